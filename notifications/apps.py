from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications")

    def ready(self) -> None:
        # Here, as Django wants: the outbox's models load once the registry is ready.
        from releases.workflow import write_with_every_change

        from .outbox import write

        write_with_every_change(write)
