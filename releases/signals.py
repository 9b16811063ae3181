"""Account changes that end access to releases: deactivating an account, taking staff
away, deleting it. Each is recorded on every release the person could follow; that also
gives each release a new revision, at which every web process ends the person's open
live streams (releases.live re-checks who may follow at each revision)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.utils.translation import gettext_noop

from . import workflow
from .actors import SystemActor
from .models import Release, Stakeholder

ACCOUNTS = SystemActor(gettext_noop("account change"))
# What pre_save saw, for post_save to compare.
_BEFORE = "_deploycheck_standing"


def remember_standing(sender: type[User], instance: User, **kwargs: Any) -> None:
    if instance.pk is not None:
        before = sender.objects.filter(pk=instance.pk).values("is_active", "is_staff").first()
        setattr(instance, _BEFORE, before)


def record_lost_standing(sender: type[User], instance: User, **kwargs: Any) -> None:
    before = getattr(instance, _BEFORE, None)
    if not before:
        return
    after = {"is_active": instance.is_active, "is_staff": instance.is_staff}
    lost = (before["is_active"] and not instance.is_active) or (
        before["is_staff"] and not instance.is_staff
    )
    if not lost:
        return
    # A staff account could follow every release; anyone else, the ones they are on.
    could_follow = (
        Release.objects.all()
        if before["is_staff"]
        else Release.objects.filter(stakeholders__user=instance).distinct()
    )
    for release in could_follow:
        workflow.record_account_change(
            release, user=instance, before=before, after=after, by=ACCOUNTS
        )


def leave_releases_before_deletion(sender: type[User], instance: User, **kwargs: Any) -> None:
    # The cascade would remove the roles unaudited and unpublished; remove them first.
    for stake in Stakeholder.objects.filter(user=instance).select_related("release"):
        workflow.unassign(stake.release, role=stake.role, user=instance, by=ACCOUNTS)
