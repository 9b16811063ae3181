from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = _("Releases")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from .language import remember_on_login

        user_logged_in.connect(remember_on_login, dispatch_uid="deploycheck-language-on-login")
