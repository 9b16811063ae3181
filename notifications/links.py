"""Links in mails that act for the person they were sent to ("I'm ready", unsubscribe):
signed with SECRET_KEY, so nothing is stored; the link names what it acts on and proves
the server made it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core import signing

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class BadToken(Exception):
    """A link that cannot be acted on; its message says why, for people to read."""


def read_link(
    token: str,
    *,
    salt: str,
    max_age: timedelta,
    fields: Mapping[str, type],
    expired: StrOrPromise,
    invalid: StrOrPromise,
) -> dict[str, Any]:
    """What a link made by `signing.dumps(…, salt=salt)` names, with each of `fields` of
    its type; BadToken saying `expired` or `invalid` otherwise."""
    try:
        payload = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired:
        raise BadToken(expired) from None
    except signing.BadSignature:
        raise BadToken(invalid) from None
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(name), kind) for name, kind in fields.items()
    ):
        raise BadToken(invalid)
    return payload
