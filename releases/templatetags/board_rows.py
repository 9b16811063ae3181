"""`{% item_row row %}`: a board row from the shared row renders (releases.board.row_html)."""

from __future__ import annotations

from django import template
from django.template.context import Context
from django.utils.safestring import SafeString

from releases.board import ItemRow, row_html

register = template.Library()


@register.simple_tag(takes_context=True)
def item_row(context: Context, row: ItemRow) -> SafeString:
    return row_html(row, context.flatten())
