"""Finding calls: the call list's filters and summaries, and full-text search over every transcript.

Search uses PostgreSQL full-text search on TranscriptSegment.search_vector (a generated column with a
GIN index, config 'english'). Queries are in websearch syntax: "quoted phrases", -excluded words, OR.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import zip_longest

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank
from django.db.models import Count, Exists, F, Func, OuterRef, Q, QuerySet, Subquery, TextField, Value
from django.db.models.functions import Coalesce, NullIf
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from calls import holds
from calls.models import Call, Gap, Participant, TranscriptSegment

SEARCH_CONFIG = "english"
# ts_headline marks matches with these; they are private-use characters, so the text around them can be
# escaped and only the markers turned into <mark>.
HIGHLIGHT_START = "\ue000"
HIGHLIGHT_STOP = "\ue001"
# ts_headline's parser takes "<...>" for markup and leaves it out of snippets; it gets the text with these
# stand-ins for angle brackets (which it treats as spaces, so words still match) and they are put back.
ANGLE_BRACKET_STAND_INS = "\ue002\ue003"
HEADLINE_OPTIONS = {"max_words": 35, "min_words": 15}
PHONE_PUNCTUATION = re.compile(r"[\s().-]")


@dataclass(frozen=True)
class CallFilters:
    date_from: date | None = None
    date_to: date | None = None
    state: str = ""
    direction: str = ""
    participant: str = ""
    has_gaps: bool = False
    on_hold: bool = False


def filter_calls(calls: QuerySet[Call], filters: CallFilters) -> QuerySet[Call]:
    # Days in the current time zone, as a range of moments: `created_at >= midnight` can use the calls'
    # indexes, where `created_at::date` makes PostgreSQL read every call.
    if filters.date_from:
        calls = calls.filter(created_at__gte=_start_of(filters.date_from))
    if filters.date_to and filters.date_to < date.max:
        calls = calls.filter(created_at__lt=_start_of(filters.date_to + timedelta(days=1)))
    if filters.state:
        calls = calls.filter(state=filters.state)
    if filters.direction:
        calls = calls.filter(direction=filters.direction)
    if filters.participant:
        calls = calls.filter(_participant_matches(filters.participant))
    if filters.has_gaps:
        calls = calls.filter(Exists(Gap.objects.filter(call=OuterRef("pk"))))
    if filters.on_hold:
        calls = holds.held(calls)
    return calls


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _participant_matches(text: str) -> Q:
    """A number typed as "+1 (425) 555-0100" matches the raw id "4:+14255550100"."""
    value = text.strip()
    if re.fullmatch(r"[\d\s().+-]+", value):
        value = PHONE_PUNCTUATION.sub("", value)
    in_participants = Participant.objects.filter(call=OuterRef("pk")).filter(
        Q(raw_id__icontains=value) | Q(display_name__icontains=value)
    )
    return (
        Q(caller__icontains=value)
        | Q(callee__icontains=value)
        | Q(caller_display_name__icontains=value)
        | Exists(in_participants)
    )


def with_summary(calls: QuerySet[Call]) -> QuerySet[Call]:
    """Add has_gaps, segment_count and the last utterance, as subqueries: one query for a whole page."""
    segments = TranscriptSegment.objects.filter(call=OuterRef("pk"))
    latest = segments.order_by("-sequence")
    return calls.annotate(
        has_gaps=Exists(Gap.objects.filter(call=OuterRef("pk"))),
        segment_count=Coalesce(
            Subquery(segments.order_by().values("call").annotate(count=Count("pk")).values("count")[:1]), 0
        ),
        last_text=Subquery(latest.values("text")[:1]),
        last_speaker=Subquery(
            latest.values(speaker=Coalesce(NullIf(F("participant__display_name"), Value("")), F("participant_raw_id")))[
                :1
            ]
        ),
        last_speaker_role=Subquery(latest.values("participant__role")[:1]),
    )


def transcript_query(text: str) -> SearchQuery:
    cleaned = text.replace(HIGHLIGHT_START, "").replace(HIGHLIGHT_STOP, "")
    return SearchQuery(cleaned, search_type="websearch", config=SEARCH_CONFIG)


def matching_segments(text: str, calls: QuerySet[Call], *, spoken_by: str = "") -> QuerySet[TranscriptSegment]:
    """Segments of these calls, live or past, that match `text`, best first; `spoken_by` a role
    (Participant.Role) keeps only what agents, or customers, said."""
    query = transcript_query(text)
    segments = (
        TranscriptSegment.objects.filter(search_vector=query)
        .annotate(rank=SearchRank(F("search_vector"), query))
        .select_related("call", "participant")
        .order_by("-rank", "-received_at", "-id")
    )
    if calls.query.has_filters():  # every call (all-calls scope, no filter): no subquery to join
        segments = segments.filter(call__in=calls)
    if spoken_by:
        segments = segments.filter(participant__role=spoken_by)
    return segments


@dataclass(frozen=True)
class SearchHit:
    segment: TranscriptSegment
    snippet: SafeString

    @property
    def url(self) -> str:
        """The moment in the call: the call page scrolls to and highlights this segment."""
        segment = self.segment
        return f"{reverse('calls-detail', args=[segment.call_id])}?t={segment.offset_ms}#segment-{segment.sequence}"


def search_hits(text: str, page: list[TranscriptSegment]) -> list[SearchHit]:
    """Highlighted snippets for one page of results: ts_headline is costly, so it runs on the page only."""
    text_without_brackets = Func(
        F("text"), Value("<>"), Value(ANGLE_BRACKET_STAND_INS), function="translate", output_field=TextField()
    )
    headline = SearchHeadline(
        text_without_brackets,
        transcript_query(text),
        config=SEARCH_CONFIG,
        start_sel=HIGHLIGHT_START,
        stop_sel=HIGHLIGHT_STOP,
        **HEADLINE_OPTIONS,
    )
    headlines = dict(
        TranscriptSegment.objects.filter(pk__in=[segment.pk for segment in page])
        .annotate(headline=headline)
        .values_list("pk", "headline")
    )
    return [SearchHit(segment, highlighted(headlines.get(segment.pk, segment.text))) for segment in page]


def highlighted(headline: str) -> SafeString:
    """Escape a ts_headline result, turning only its highlight markers into <mark>."""
    headline = headline.translate(str.maketrans(ANGLE_BRACKET_STAND_INS, "<>"))
    pieces = re.split(f"{HIGHLIGHT_START}(.*?){HIGHLIGHT_STOP}", headline, flags=re.DOTALL)
    plain, marked = pieces[0::2], pieces[1::2]
    return format_html_join(
        "",
        "{}{}",
        ((text, format_html("<mark>{}</mark>", match) if match else "") for text, match in zip_longest(plain, marked)),
    )
