import logging
import os
from pathlib import Path

from celery import Celery, signals

from deploycheck.logs import RedactSecrets

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploycheck.settings")

app = Celery("deploycheck")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Where a worker notes its process id once it takes tasks; the launcher (deploycheck.run)
# sets it for the worker it starts, to show the logins only when checks can run.
READY_FILE_VARIABLE = "WORKER_READY_FILE"


def _redact_secrets(logger: logging.Logger, **kwargs: object) -> None:
    # Celery replaces the handlers settings.LOGGING gave the root logger, and with them
    # the filter that keeps secrets out of log lines; its own handlers get the filter too.
    for handler in logger.handlers:
        if not any(isinstance(existing, RedactSecrets) for existing in handler.filters):
            handler.addFilter(RedactSecrets())


# Beat sends the periodic tasks every 15 to 60 s, and the worker says it received and
# finished each: at INFO that is a dozen lines a minute saying nothing went wrong, which
# pushes what matters (the logins `make run` prints, a check that failed) off the screen.
# Their warnings and errors still show.
ROUTINE_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


def _quiet_routine(**kwargs: object) -> None:
    for name in ROUTINE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))


def _note_ready(**kwargs: object) -> None:
    ready_file = os.environ.get(READY_FILE_VARIABLE)
    if ready_file:
        Path(ready_file).write_text(str(os.getpid()))


def _note_ready_last(**kwargs: object) -> None:
    # The worker has imported its task modules by now, and with them their own
    # worker_ready handlers (checks.tasks readies the check kinds, which takes a moment);
    # handlers run in the order they were connected, so the note comes after theirs.
    signals.worker_ready.connect(_note_ready)


def _yield_to_pages(**kwargs: object) -> None:
    from django.conf import settings

    if settings.WORKER_NICENESS > 0:
        os.nice(settings.WORKER_NICENESS)


# Connected by a call, not as a decorator: Celery ships no type hints, and an untyped
# decorator would leave the function unchecked.
signals.after_setup_logger.connect(_redact_secrets)
signals.after_setup_logger.connect(_quiet_routine)
signals.after_setup_task_logger.connect(_redact_secrets)
signals.worker_init.connect(_note_ready_last)
signals.worker_init.connect(_yield_to_pages)
