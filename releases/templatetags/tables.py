"""`{% table %}`: a page's table, with the markup every table shares in _table.html.

    {% table links labelledby="share-list-heading" %}
      <tr><th scope="col">…</th>…</tr>
    {% rows %}
      {% for link in links %}<tr><th scope="row">…</th><td>…</td></tr>{% endfor %}
    {% empty %}
      <p class="empty-state">…</p>
    {% endtable %}

Before {% rows %} go the head's rows, after it the body's. While `links` is empty the
page shows what {% empty %} holds, or nothing without it. `labelledby` is the id of the
heading that names the table.
"""

from __future__ import annotations

from django import template
from django.template.base import FilterExpression, NodeList, Parser, Token, token_kwargs
from django.template.context import Context

register = template.Library()


class TableNode(template.Node):
    child_nodelists = ("head", "body", "empty")

    def __init__(
        self,
        rows: FilterExpression,
        labelledby: FilterExpression,
        head: NodeList,
        body: NodeList,
        empty: NodeList,
    ) -> None:
        self.rows, self.labelledby = rows, labelledby
        self.head, self.body, self.empty = head, body, empty

    def render(self, context: Context) -> str:
        if not self.rows.resolve(context):
            return self.empty.render(context)
        assert context.template is not None
        table = context.template.engine.get_template("_table.html")
        # Head and body are rendered in the page's own context, CSRF token and all.
        with context.push(
            labelledby=self.labelledby.resolve(context),
            head=self.head.render(context),
            body=self.body.render(context),
        ):
            return table.render(context)


@register.tag
def table(parser: Parser, token: Token) -> TableNode:
    bits = token.split_contents()
    options = token_kwargs(bits[2:], parser)
    if len(bits) != 3 or "labelledby" not in options:
        raise template.TemplateSyntaxError(
            '{% table %} takes the rows and labelledby="heading id", as in '
            '{% table links labelledby="links-heading" %}'
        )
    head = parser.parse(("rows",))
    parser.delete_first_token()
    body = parser.parse(("empty", "endtable"))
    empty = NodeList()
    if parser.next_token().contents == "empty":
        empty = parser.parse(("endtable",))
        parser.delete_first_token()
    return TableNode(parser.compile_filter(bits[1]), options["labelledby"], head, body, empty)
