from __future__ import annotations

from datetime import datetime, timedelta

from django import template

from calls import display, exports
from calls.models import Call, TranscriptSegment, raw_id_label
from calls.models import participant_label as labelled

register = template.Library()


@register.filter
def participant_label(raw_id: str) -> str:
    return raw_id_label(raw_id or "")


@register.filter
def last_speaker(call: Call) -> str:
    """Who said a listed call's last line (search.with_summary's annotations), as its page names them."""
    return labelled(call.last_speaker or "", "", call.last_speaker_role or "")


@register.filter
def speaker(segment: TranscriptSegment) -> str:
    return exports.speaker(segment)


@register.filter
def clock(milliseconds: int | float | None) -> str:
    return display.clock(milliseconds)


@register.filter
def shown_time(moment: datetime | None) -> str:
    return display.shown_time(moment)


@register.filter
def duration(value: timedelta | None) -> str:
    if value is None:
        return ""
    return display.clock(value.total_seconds() * 1000)


@register.filter
def percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"
