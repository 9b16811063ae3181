"""The kinds of automated check, one module each; `registry` names them all.

Importing one module does not import the others: a process that only enqueues runs
(`manage.py verify`) never loads the vendors' clients.
"""
