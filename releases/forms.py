"""What the board's forms post. The rules themselves live in releases.workflow; these only
check that a request is well-formed before it reaches them."""

from __future__ import annotations

from django import forms

from .models import ReleaseStatus, Role

ITEM_ACTIONS = ("tick", "untick", "na", "blocked", "note", "evidence")


class ItemActionForm(forms.Form):
    # A checkbox form posts action twice ("untick", then "tick" when checked); Django
    # reads the last value, which is the one the checkbox meant.
    action = forms.ChoiceField(choices=[(action, action) for action in ITEM_ACTIONS])
    # The item version the form was rendered with: a stale one is a conflict.
    version = forms.IntegerField(min_value=0)
    reason = forms.CharField(required=False, max_length=2000)
    note = forms.CharField(required=False, max_length=5000)
    evidence_url = forms.CharField(required=False, max_length=1000)


class SignOffForm(forms.Form):
    # Any role: the workflow itself says that only leads sign off.
    role = forms.ChoiceField(choices=Role.choices)
    # Items without a phase heading have the phase "", which is a real phase to sign.
    phase = forms.CharField(required=False, max_length=300, strip=False)
    action = forms.ChoiceField(choices=[("sign", "sign"), ("withdraw", "withdraw")])


class ApprovalForm(forms.Form):
    action = forms.ChoiceField(choices=[("approve", "approve"), ("revoke", "revoke")])
    reason = forms.CharField(required=False, max_length=2000)


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=ReleaseStatus.choices)
