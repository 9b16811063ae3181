import os

import django

from deploycheck.request_thread import RequestThreadHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploycheck.settings")
django.setup(set_prefix=False)

application = RequestThreadHandler()
