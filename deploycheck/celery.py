import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploycheck.settings")

app = Celery("deploycheck")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _create_broker_folders(sender: Celery, **kwargs: object) -> None:
    # The filesystem transport expects its folders to exist; Redis needs nothing.
    from pathlib import Path

    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if key in options:
            Path(options[key]).mkdir(parents=True, exist_ok=True)


# Connected by a call, not as a decorator: Celery ships no type hints, and an untyped
# decorator would leave the function unchecked.
app.on_after_configure.connect(_create_broker_folders)
