from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from releases import checklists, workflow
from releases.actors import SystemActor
from releases.models import ChecklistTemplate, Release, Role

DEMO_VERSION = "v1.0.0"
LOADER = SystemActor("manage.py load_demo")
DEMO_PASSWORD = "demo"
DEMO_PEOPLE = {
    Role.DEVOPS: ("devops", "Dolores", "Ortega", "+34 600 000 001"),
    Role.BACKEND: ("backend", "Bruno", "Herrera", "+34 600 000 002"),
    Role.FRONTEND: ("frontend", "Fernanda", "Ruiz", "+34 600 000 003"),
    Role.QA: ("qa", "Quique", "Álvarez", "+34 600 000 004"),
    Role.PRODUCT_OWNER: ("po", "Paula", "Olmedo", "+34 600 000 005"),
    Role.SUPPORT: ("support", "Sergio", "Campos", "+34 600 000 006"),
}


class Command(BaseCommand):
    help = (
        "Load the built-in default checklist and a demo release; in demo mode also one "
        "account per role (password 'demo'). Safe to run again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            template = self._default_template()
            if Release.objects.filter(version=DEMO_VERSION).exists():
                # Seeded once: what staff changed since (people removed, contacts edited)
                # stays as they left it.
                self.stdout.write(f"demo release {DEMO_VERSION} already there; left as it is")
                return
            release = workflow.create_release(
                template,
                version=DEMO_VERSION,
                title="Sistema de Automatización de Llamadas",
                by=LOADER,
            )
            self.stdout.write(f"created release {DEMO_VERSION} from “{template.name}”")
            if settings.DEMO_MODE:
                self._demo_accounts(release)
            else:
                self.stdout.write("demo accounts skipped: they exist only with DEBUG and DEMO_MODE")

    def _default_template(self) -> ChecklistTemplate:
        title = checklists.read(checklists.DEFAULT_CHECKLIST).title
        existing = ChecklistTemplate.objects.filter(name=title).first()
        if existing is not None:
            return existing
        template = workflow.import_default_template(by=LOADER)
        self.stdout.write(f"loaded the default checklist “{template.name}”")
        return template

    def _demo_accounts(self, release: Release) -> None:
        User = get_user_model()
        admin, created = User.objects.get_or_create(
            username="admin",
            defaults={"is_staff": True, "is_superuser": True, "first_name": "Admin"},
        )
        if created:
            admin.set_password(DEMO_PASSWORD)
            admin.save()
        for role, (username, first, last, _phone) in DEMO_PEOPLE.items():
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@example.com",
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            workflow.assign(release, role=role, user=user, by=LOADER)
        # The seed's contacts hold placeholders; the demo fills them so the whole
        # approval flow can be walked through.
        for contact in release.contacts.all():
            contact_role = Role.from_label(contact.role)
            if contact_role in DEMO_PEOPLE and contact.has_placeholder():
                username, first, last, phone = DEMO_PEOPLE[contact_role]
                workflow.update_contact(
                    contact,
                    by=LOADER,
                    name=f"{first} {last}",
                    phone=phone,
                    email=f"{username}@example.com",
                )
