"""The models and their migrations say the same: a change without its migration would
reach production as a schema the code does not expect."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_it_has_a_migration_for_every_model_change() -> None:
    out = StringIO()

    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)

    assert "No changes detected" in out.getvalue(), out.getvalue()
