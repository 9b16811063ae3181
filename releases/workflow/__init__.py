"""Every change to a release, as one named operation, in rooms by area.

Each operation asks releases.policy whether the actor may act and runs inside
`change._changing`: it locks the release, applies the change, appends its audit events,
bumps the release's revision and publishes a live update once the transaction commits.
Views, admin actions, management commands and tasks call these; they never save release
models or audit events themselves.

Where things go: a new permission rule is a function in releases.policy; a new audit
action is a member of models.AuditAction (with its label); a new operation goes in the
module of its area, uses `_changing` and `change.audit(...)`, and nothing else writes to
the audit trail. The names below are what the rest of the project calls.
"""

from .approval import approval_obstacles, approve, revoke_approval, set_status
from .change import (
    By,
    Conflict,
    WorkflowError,
    as_actor,
    holding,
    managing,
    visible_text,
    write_with_every_change,
)
from .imports import create_release, import_default_template, import_template
from .items import (
    annotate_item,
    mark_blocked,
    mark_not_applicable,
    set_item_state,
    sign_off,
    tick,
    untick,
    withdraw_sign_off,
)
from .nudges import last_nudged_at, nudge_role
from .people import (
    CONTACT_FIELDS,
    RELEASE_FIELDS,
    ContactRow,
    add_contact,
    assign,
    contacts_version,
    create_share_link,
    edit_contact,
    edit_contacts,
    edit_release,
    reassign,
    record_account_change,
    remove_contact,
    revoke_share_link,
    unassign,
    update_contact,
)
from .perform import acknowledge, link_performs, performing, settle_performance
from .results import (
    CheckFinding,
    link_checks,
    record_check_result,
    record_check_results,
    record_pipeline_evidence,
)
from .rollback import (
    annotate_rollback_step,
    check_storable,
    close_rollback,
    declare_rollback,
    edit_rollback_plan,
    finish_deploy,
    latest_deployment,
    latest_rollback,
    mitigate_rollback,
    plan_error_text,
    plan_version,
    refuse_plan_edit_during_rollback,
    resolve_rollback,
    rollback_plan,
    start_deploy,
    step_version,
    tick_rollback_step,
)
from .updates import checked_message, post_update
from .window import (
    advance_windows,
    cancel_window,
    complete_window,
    edit_window,
    extend_window,
    schedule_window,
)

__all__ = [
    "CONTACT_FIELDS",
    "RELEASE_FIELDS",
    "By",
    "CheckFinding",
    "Conflict",
    "ContactRow",
    "WorkflowError",
    "acknowledge",
    "add_contact",
    "advance_windows",
    "annotate_item",
    "annotate_rollback_step",
    "approval_obstacles",
    "approve",
    "as_actor",
    "assign",
    "cancel_window",
    "check_storable",
    "checked_message",
    "close_rollback",
    "complete_window",
    "contacts_version",
    "create_release",
    "create_share_link",
    "declare_rollback",
    "edit_contact",
    "edit_contacts",
    "edit_release",
    "edit_rollback_plan",
    "edit_window",
    "extend_window",
    "finish_deploy",
    "holding",
    "import_default_template",
    "import_template",
    "last_nudged_at",
    "latest_deployment",
    "latest_rollback",
    "link_checks",
    "link_performs",
    "managing",
    "mark_blocked",
    "mark_not_applicable",
    "mitigate_rollback",
    "nudge_role",
    "performing",
    "plan_error_text",
    "plan_version",
    "post_update",
    "reassign",
    "record_account_change",
    "record_check_result",
    "record_check_results",
    "record_pipeline_evidence",
    "refuse_plan_edit_during_rollback",
    "remove_contact",
    "resolve_rollback",
    "revoke_approval",
    "revoke_share_link",
    "rollback_plan",
    "schedule_window",
    "set_item_state",
    "set_status",
    "settle_performance",
    "sign_off",
    "start_deploy",
    "step_version",
    "tick",
    "tick_rollback_step",
    "unassign",
    "untick",
    "update_contact",
    "visible_text",
    "withdraw_sign_off",
    "write_with_every_change",
]
