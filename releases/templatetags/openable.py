"""`{% page_to_return_to %}`: where a page's own forms (the language switcher) send the
person back to, which for a page rendered from a POST is not its own address
(releases.openable)."""

from __future__ import annotations

from typing import Any

from django import template

from releases.openable import page_to_return_to as page_of

register = template.Library()


@register.simple_tag(takes_context=True)
def page_to_return_to(context: dict[str, Any]) -> str:
    return page_of(context["request"])
