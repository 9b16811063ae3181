"""Choices saved before the page offered approval reminders, nudges and "starting
soon" get them, as everyone who never chose does, until the person chooses again."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from notifications.models import EmailSubscription

BEFORE = [("notifications", "0007_performances")]


@pytest.mark.django_db(transaction=True)
def test_a_choice_saved_before_the_new_events_gets_them(users: dict[str, Any]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("notifications", "EmailSubscription")
    old.objects.create(user_id=users["po"].pk, events=["approval.requested"])

    # Forward to the latest, 0008 and every later one: the tests after this one need the
    # schema the models have.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    saved = EmailSubscription.objects.get(user=users["po"])
    assert saved.wants("approval.reminder", "v1.0.0")
    assert saved.wants("role.nudged", "v1.0.0")
    assert saved.wants("maintenance.starting_soon", "v1.0.0")
    assert not saved.wants("deploy.started", "v1.0.0")
    assert not saved.wants("rollback.declared", "v1.0.0")
