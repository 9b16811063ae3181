import gc
import os

import django

from deploycheck.request_thread import RequestThreadHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploycheck.settings")
django.setup(set_prefix=False)

application = RequestThreadHandler()

# What start-up built lives as long as the process: out of the collector's full passes,
# which otherwise doubled the slowest loads of a 2,000-item board's rows.
gc.freeze()
