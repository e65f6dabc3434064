"""Template tags for the call page's retention section (templates/calls/_retention.html)."""

from __future__ import annotations

from django import template

from calls import holds
from calls.models import Call, LegalHold

register = template.Library()


@register.simple_tag
def legal_holds(call: Call) -> list[LegalHold]:
    """Every hold on the call, in force or released: its life on its page."""
    return holds.holds_on(call)
