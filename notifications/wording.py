"""What every channel's message says of an event, whatever its format: its title, the
fields shown under it and its link, in the language active when it is built."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import Event

TEST = "test"

TITLES = {
    "approval.requested": gettext_lazy("Ready for go-live approval"),
    "approval.reminder": gettext_lazy("Reminder: waiting for your go-live approval"),
    "approval.granted": gettext_lazy("Go-live approved"),
    "approval.revoked": gettext_lazy("Go-live approval revoked"),
    "signoff.reopened": gettext_lazy("Sign-off reopened"),
    "item.blocked": gettext_lazy("Item blocked"),
    "check.failing": gettext_lazy("Automated check failing"),
    "deploy.started": gettext_lazy("Deploy started"),
    "deploy.finished": gettext_lazy("Deploy finished"),
    "rollback.declared": gettext_lazy("Rollback declared"),
    "rollback.step_done": gettext_lazy("Rollback step done"),
    "rollback.resolved": gettext_lazy("Rollback resolved"),
    "incident.update_posted": gettext_lazy("Incident update posted"),
    "maintenance.scheduled": gettext_lazy("Maintenance window scheduled"),
    "maintenance.changed": gettext_lazy("Maintenance window changed"),
    "maintenance.cancelled": gettext_lazy("Maintenance window cancelled"),
    "maintenance.started": gettext_lazy("Maintenance window started"),
    "maintenance.ended": gettext_lazy("Maintenance window ended"),
    "maintenance.starting_soon": gettext_lazy("Maintenance window starting soon"),
    "role.nudged": gettext_lazy("Go-live is waiting on your role"),
    TEST: gettext_lazy("Test notification"),
}
# The event types of items the app performs: sent only to the audience a person chose
# (notifications.perform), never to the channels and people that subscribe to events.
ANNOUNCEMENT = "announcement"
ACKNOWLEDGE_REQUESTED = "support.acknowledge_requested"
RETROSPECTIVE_INVITED = "retrospective.invited"
PERFORMED_TITLES = {
    ANNOUNCEMENT: gettext_lazy("Announcement"),
    ACKNOWLEDGE_REQUESTED: gettext_lazy("Is support ready?"),
    RETROSPECTIVE_INVITED: gettext_lazy("Invitation to the deploy retrospective"),
}
# The fields of an event's data shown under its title, in this order.
SHOWN = (
    "item",
    "role",
    "phase",
    "severity",
    "result",
    "state",
    "step",
    "text",
    "in",
    "start",
    "end",
    "time_zone",
    "failure",
    "reason",
    "message",
)


def what_happened(event: Event) -> str:
    """The event's title, in the active language."""
    return str(TITLES.get(event.type) or PERFORMED_TITLES.get(event.type) or event.type)


def title_of(event: Event) -> str:
    """The version and what happened; a test, which tells of no release, has no version."""
    what = what_happened(event)
    version = event.data.get("release", {}).get("version", "")
    return f"{version}: {what}" if version else what


def link_of(event: Event) -> tuple[str, str]:
    """Where the message points, and the words on the link."""
    url = event.data.get("release", {}).get("url", "")
    if url:
        return url, _("Open the release")
    return settings.SITE_URL, _("Open deploycheck")
