from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = _("Releases")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from .language import remember_on_login

        user_logged_in.connect(remember_on_login, dispatch_uid="deploycheck-language-on-login")

        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save, pre_delete, pre_save

        from . import signals

        accounts = get_user_model()
        pre_save.connect(signals.remember_standing, sender=accounts, dispatch_uid="dc-standing")
        post_save.connect(
            signals.record_lost_standing, sender=accounts, dispatch_uid="dc-lost-standing"
        )
        pre_delete.connect(
            signals.leave_releases_before_deletion, sender=accounts, dispatch_uid="dc-leave"
        )
