"""The call domain: calls, their participants, media streams, final transcript segments and history."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse

TICKS_PER_MILLISECOND = 10_000  # ACS transcription offsets and durations are 100 ns ticks.


def ticks_to_ms(ticks: int) -> float:
    """Milliseconds as the pages and the live feed take them. Pages place and seek by whole milliseconds:
    they floor it (calls/display.py and static/calls/live.js alike, as `TranscriptSegment.offset_ms` does).
    Transcript exports keep them exact instead (calls/exports.py, `exact_ms`)."""
    return ticks / TICKS_PER_MILLISECOND


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class CallQuerySet(models.QuerySet["Call"]):
    def live(self) -> CallQuerySet:
        return self.exclude(state__in=ENDED_STATES)

    def ended(self) -> CallQuerySet:
        return self.filter(state__in=ENDED_STATES)


class Call(models.Model):
    class State(models.TextChoices):
        # Named as ACS's CallConnectionState names them, plus `failed` for a call that never connected
        # and `unanswered` for an incoming call Callscribe could not answer while it rang.
        UNKNOWN = "unknown"
        CONNECTING = "connecting"
        CONNECTED = "connected"
        TRANSFERRING = "transferring"
        TRANSFER_ACCEPTED = "transferAccepted"
        DISCONNECTING = "disconnecting"
        DISCONNECTED = "disconnected"
        FAILED = "failed"
        UNANSWERED = "unanswered"

    class Direction(models.TextChoices):
        INBOUND = "inbound"
        OUTBOUND = "outbound"
        UNKNOWN = "unknown"

    class StreamStatus(models.TextChoices):
        INACTIVE = "inactive"
        STARTING = "starting"
        ACTIVE = "active"
        STOPPING = "stopping"
        FAILED = "failed"
        # Transcription only: stopped by staff while a caller gives sensitive data (calls/pause.py).
        PAUSED = "paused"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    call_connection_id = models.CharField(max_length=200, unique=True, null=True, blank=True)
    server_call_id = models.TextField(blank=True)
    correlation_id = models.CharField(max_length=200, blank=True)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.UNKNOWN)
    caller = models.CharField(max_length=300, blank=True, help_text="Raw ACS identifier of the caller.")
    callee = models.CharField(max_length=300, blank=True, help_text="Raw ACS identifier of the callee.")
    caller_display_name = models.CharField(max_length=300, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.CONNECTING)
    locale = models.CharField(max_length=20, blank=True)
    media_streaming_status = models.CharField(
        max_length=10, choices=StreamStatus.choices, default=StreamStatus.INACTIVE
    )
    transcription_status = models.CharField(max_length=10, choices=StreamStatus.choices, default=StreamStatus.INACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.TextField(blank=True)
    # What staff last asked for. A stream that stops while wanted is recovered (see calls/recovery.py).
    media_streaming_wanted = models.BooleanField(default=True)
    transcription_wanted = models.BooleanField(default=True)
    last_event_at = models.DateTimeField(null=True, blank=True, help_text="When ACS last told us anything.")
    # ParticipantsUpdated carries a sequence number; an older update never overwrites a newer one.
    participants_sequence = models.BigIntegerField(null=True, blank=True)
    # Every live-feed delta for this call takes the next number, so a viewer can resume after the last it saw.
    last_sequence = models.BigIntegerField(default=0)
    # Every Agent who took part (calls/participants.py adds them as they join; never removed). An array
    # on the row rather than a join table: who may see a call is one indexed test on the call itself
    # (calls/permissions.py), and each live call event carries it, so the live feed decides in memory.
    agent_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)

    objects = CallQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("watch_call", "Can watch live and past calls and their transcripts"),
            ("control_call", "Can start and stop streaming and transcription, and hang up"),
            ("view_all_calls", "Can see all calls"),
        ]
        indexes = [
            # The call list: newest first, live calls split out by state.
            models.Index(fields=["state", "-created_at"], name="call_state_created_idx"),
            # The live calls (`CallQuerySet.live`, ENDED_STATES), newest first: the call list's live calls and
            # the live feed's snapshot read a few rows here instead of every call (docs/performance.md).
            models.Index(
                fields=["-created_at"],
                name="call_live_created_idx",
                condition=~models.Q(state__in=["disconnected", "failed", "unanswered"]),
            ),
            # The ended calls, newest first: the call list's first page reads 25 rows here instead of sorting
            # every ended call (`state IN (...)` cannot take call_state_created_idx's order).
            models.Index(
                fields=["-created_at"],
                name="call_ended_created_idx",
                condition=models.Q(state__in=["disconnected", "failed", "unanswered"]),
            ),
            # Scope (calls/permissions.py): the calls an agent or a team's agents took part in ...
            GinIndex(fields=["agent_ids"], name="call_agent_ids_idx"),
            # ... and the calls to a number or identity routed to a team.
            models.Index(fields=["callee"], name="call_callee_idx"),
        ]

    def __str__(self) -> str:
        """The caller and the id the call's addresses use (admin titles and messages show it)."""
        label = self.label
        return label if label == str(self.id) else f"{label} ({self.id})"

    def get_absolute_url(self) -> str:
        return reverse("calls-detail", args=[self.id])

    @property
    def is_live(self) -> bool:
        return self.state not in ENDED_STATES

    @property
    def label(self) -> str:
        """What staff call a call: the caller's name or number (the live pages get it in call events)."""
        return self.caller_display_name or raw_id_label(self.caller) or str(self.id)

    def snapshot_segments(self, after: int | None = None) -> models.QuerySet[TranscriptSegment]:
        """The final segments a page or a live viewer shows with the call as read: numbered up to its
        `last_sequence` (and above `after`), in order, with their speakers.

        Read the call first: a number becomes visible only when the transaction that took it commits,
        so every segment numbered up to `last_sequence` is already readable, and the live feed resumes
        `?after=` exactly there without losing or repeating a line.
        """
        segments = self.segments.filter(sequence__lte=self.last_sequence)
        if after is not None:
            segments = segments.filter(sequence__gt=after)
        return segments.select_related("participant").order_by("sequence")


ENDED_STATES = (Call.State.DISCONNECTED, Call.State.FAILED, Call.State.UNANSWERED)


class Participant(models.Model):
    class Kind(models.TextChoices):
        PHONE = "phone", "Phone"
        ACS_USER = "acs_user", "ACS user"
        TEAMS_USER = "teams_user", "Teams user"
        TEAMS_APP = "teams_app", "Teams app"
        TEAMS_VISITOR = "teams_visitor", "Teams guest"
        UNKNOWN = "unknown", "Unknown"

    class Role(models.TextChoices):
        AGENT = "agent", "Agent"
        CUSTOMER = "customer", "Customer"

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="participants")
    raw_id = models.CharField(max_length=300, help_text="ACS participantRawID; empty for mixed audio.")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.UNKNOWN)
    display_name = models.CharField(max_length=300, blank=True)
    # An identity linked to an Agent joins as that agent; anyone else on the call is the customer.
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.CUSTOMER)
    agent = models.ForeignKey("Agent", on_delete=models.SET_NULL, null=True, blank=True, related_name="participations")
    is_muted = models.BooleanField(default=False)
    is_on_hold = models.BooleanField(default=False)
    in_call = models.BooleanField(default=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["first_seen_at", "id"]
        constraints = [models.UniqueConstraint(fields=["call", "raw_id"], name="unique_participant_per_call")]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return participant_label(self.raw_id, self.display_name, self.role)


_KIND_PREFIXES = (
    ("4:", Participant.Kind.PHONE),
    ("8:acs:", Participant.Kind.ACS_USER),
    ("8:gcch-acs:", Participant.Kind.ACS_USER),
    ("8:dod-acs:", Participant.Kind.ACS_USER),
    ("8:teamsvisitor:", Participant.Kind.TEAMS_VISITOR),
    ("8:orgid:", Participant.Kind.TEAMS_USER),
    ("8:gcch:", Participant.Kind.TEAMS_USER),
    ("8:dod:", Participant.Kind.TEAMS_USER),
    ("28:", Participant.Kind.TEAMS_APP),
)


def participant_kind(raw_id: str) -> str:
    """The kind of an ACS raw identifier, from its prefix (reference 1.4)."""
    return next((kind for prefix, kind in _KIND_PREFIXES if raw_id.startswith(prefix)), Participant.Kind.UNKNOWN)


def raw_id_label(raw_id: str) -> str:
    """How staff see an ACS identity that has no display name: a phone number as dialled; an ACS or Teams
    identity (up to ~90 characters, mostly the resource's id) by its kind and the end of its id, which
    tells a call's participants apart; anything else as given. Pages show the whole id on hover."""
    kind = participant_kind(raw_id)
    if kind == Participant.Kind.PHONE:
        return raw_id.removeprefix("4:")
    if kind == Participant.Kind.UNKNOWN:
        return raw_id
    return f"{Participant.Kind(kind).label} …{raw_id[-8:]}"


def participant_label(raw_id: str, display_name: str = "", role: str = "") -> str:
    """How pages, exports and live events name a participant: "Agent Sam Ortega", "Customer +14255550123"."""
    if not raw_id:
        return display_name or "Mixed audio"
    name = display_name or raw_id_label(raw_id)
    return f"{Participant.Role(role).label} {name}" if role else name


_TYPED_PHONE_NUMBER = re.compile(r"(4:)?\+?[\d\s().-]+")
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")


def raw_id_of(identity: str) -> str:
    """How ACS writes an identity: a phone number typed any way becomes "4:+14255550100"."""
    value = identity.strip()
    if _TYPED_PHONE_NUMBER.fullmatch(value):
        return "4:" + _PHONE_PUNCTUATION.sub("", value.removeprefix("4:"))
    return value


class MediaStream(models.Model):
    """One ACS media-streaming or transcription subscription of a call, across socket reconnects."""

    class Kind(models.TextChoices):
        AUDIO = "audio"
        TRANSCRIPTION = "transcription"

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="streams")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    subscription_id = models.CharField(max_length=200, blank=True)
    encoding = models.CharField(max_length=20, blank=True)
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    channels = models.PositiveSmallIntegerField(null=True, blank=True)
    frame_length = models.PositiveIntegerField(null=True, blank=True, help_text="Bytes per audio frame.")
    locale = models.CharField(max_length=20, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    connection_count = models.PositiveIntegerField(default=0)
    packet_count = models.BigIntegerField(default=0)
    audio_frame_count = models.BigIntegerField(default=0)
    silent_frame_count = models.BigIntegerField(default=0)
    gap_count = models.BigIntegerField(default=0)
    missing_audio_ms = models.BigIntegerField(default=0)
    dtmf_count = models.BigIntegerField(default=0)
    intermediate_count = models.BigIntegerField(default=0)
    final_count = models.BigIntegerField(default=0)
    malformed_packet_count = models.BigIntegerField(default=0)
    unknown_packet_count = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["connected_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["call", "kind", "subscription_id"], name="unique_stream_subscription")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subscription_id or '(no subscription id)'}"


class Gap(models.Model):
    """A stretch of a call that was not streamed or transcribed, and why: the transcript never silently has holes."""

    class Reason(models.TextChoices):
        SOCKET_DROP = "socket_drop"
        AUDIO_GAP = "audio_gap"
        STOPPED_BY_STAFF = "stopped_by_staff"
        ACS_FAILURE = "acs_failure"
        # Intended, not a fault: staff paused transcription and audio capture (calls/pause.py).
        SENSITIVE_PAUSE = "sensitive_pause", "Paused for sensitive data"

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="gaps")
    stream = models.ForeignKey(MediaStream, on_delete=models.SET_NULL, null=True, blank=True, related_name="gaps")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} at {self.started_at:%H:%M:%S}"


class TranscriptSegment(models.Model):
    """One final transcription result. Intermediate results are only ever published live."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="segments")
    stream = models.ForeignKey(MediaStream, on_delete=models.SET_NULL, null=True, blank=True, related_name="segments")
    subscription_id = models.CharField(max_length=200, blank=True)
    participant = models.ForeignKey(
        Participant, on_delete=models.SET_NULL, null=True, blank=True, related_name="segments"
    )
    participant_raw_id = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    confidence = models.FloatField(null=True, blank=True)
    offset_ticks = models.BigIntegerField()
    duration_ticks = models.BigIntegerField()
    offset_ms = models.GeneratedField(
        expression=models.F("offset_ticks") / TICKS_PER_MILLISECOND,
        output_field=models.BigIntegerField(),
        db_persist=True,
    )
    duration_ms = models.GeneratedField(
        expression=models.F("duration_ticks") / TICKS_PER_MILLISECOND,
        output_field=models.BigIntegerField(),
        db_persist=True,
    )
    words = models.JSONField(default=list, blank=True, help_text="[{text, offset, duration}] in ticks.")
    result_status = models.CharField(max_length=20, default="final")
    received_at = models.DateTimeField()
    sequence = models.BigIntegerField(help_text="Position in the call's live feed.")
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config="english"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    # Which entities were replaced by placeholders ("CARD", "SSN", …), and, only under
    # REDACTION=redact_keep_original, the original text and words encrypted (calls/original_text.py).
    # A database default too: finals are inserted with raw SQL that names its columns (calls/services.py).
    redacted_types = ArrayField(
        models.CharField(max_length=40),
        default=list,
        db_default=models.Value([], output_field=ArrayField(models.CharField(max_length=40))),
        blank=True,
    )
    original_encrypted = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["call", "sequence"]
        # Seeing what redaction hid is a permission of its own, never implied by watching (calls/reveal.py).
        permissions = [("reveal_redacted", "Can reveal redacted data")]
        constraints = [
            # ACS redelivers a final after a reconnect: the same result is stored once. Offsets restart
            # with a new transcription subscription, so the subscription is part of the key.
            models.UniqueConstraint(
                fields=["call", "subscription_id", "participant_raw_id", "offset_ticks"],
                name="unique_final_segment",
            ),
            models.UniqueConstraint(fields=["call", "sequence"], name="unique_segment_sequence"),
        ]
        indexes = [
            # Full-text search over every transcript.
            GinIndex(fields=["search_vector"], name="segment_search_idx"),
        ]

    def __str__(self) -> str:
        return self.text[:60]

    @property
    def end_ticks(self) -> int:
        return self.offset_ticks + self.duration_ticks


class CallEvent(models.Model):
    """The call's history: every ACS callback, and Callscribe's own actions and errors."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    event_id = models.CharField(max_length=200, unique=True, null=True, blank=True, help_text="CloudEvent id.")
    type = models.CharField(max_length=200)
    time = models.DateTimeField()
    result_code = models.IntegerField(null=True, blank=True)
    result_subcode = models.IntegerField(null=True, blank=True)
    result_message = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["time", "id"]
        indexes = [models.Index(fields=["call", "time"], name="event_call_time_idx")]

    def __str__(self) -> str:
        return f"{self.type} at {self.time:%Y-%m-%d %H:%M:%S}"


class RecoveryJob(models.Model):
    """A restart of media streaming or transcription that staff did not ask to stop, a check on a call
    ACS has gone quiet about, or the end of a pause for sensitive data that staff forgot.

    Any server process may run it: workers claim due jobs with SELECT ... FOR UPDATE SKIP LOCKED, so
    exactly one process owns a call's recovery at a time.
    """

    class Kind(models.TextChoices):
        MEDIA_STREAMING = "media_streaming"
        TRANSCRIPTION = "transcription"
        CALL_CHECK = "call_check"
        PAUSE_LIMIT = "pause_limit", "Resume after a pause"  # SENSITIVE_PAUSE_MAX_SECONDS (calls/pause.py)

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="recovery_jobs")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reason = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            # Workers poll for unfinished jobs that are due.
            models.Index(fields=["due_at"], condition=models.Q(finished_at__isnull=True), name="recovery_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.call}"


class AccessLog(models.Model):
    """Who viewed, searched, exported, listened to or controlled which call, from where and when."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    call = models.ForeignKey(Call, on_delete=models.SET_NULL, null=True, blank=True, related_name="access_logs")
    action = models.CharField(max_length=50)
    detail = models.TextField(blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True, help_text="The client's address, as the request had it.")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["call", "-at"], name="access_call_at_idx")]

    def __str__(self) -> str:
        return f"{self.user} {self.action} {self.call_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class ApiToken(models.Model):
    """A key an integration (an agent desktop, an IVR) sends as `Authorization: Bearer <key>` to use the
    JSON API as one staff user, with that user's permissions (calls/api_tokens.py).

    Only the key's SHA-256 digest is stored: the key is shown once, when it is made.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text='What uses it, e.g. "IVR payment flow".')
    prefix = models.CharField(max_length=12, editable=False, help_text="The key's first characters.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.user})"


def validate_redaction_pattern(pattern: str) -> None:
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValidationError(f"Not a valid regular expression: {error}.") from None
    if compiled.fullmatch(""):
        raise ValidationError("This pattern matches empty text; it must match something.")


class RedactionRule(models.Model):
    """A deployment's own kind of sensitive data: text matching `pattern` becomes [LABEL] (calls/redaction.py)."""

    label = models.CharField(
        max_length=40,
        unique=True,
        validators=[RegexValidator(r"^[A-Z][A-Z0-9_]*$", "Capital letters, digits and _, starting with a letter.")],
        help_text="Shown as the placeholder: ACCOUNT becomes [ACCOUNT].",
    )
    pattern = models.TextField(
        validators=[validate_redaction_pattern],
        help_text="A Python regular expression, e.g. \\bAC-\\d{6}\\b. Matches are redacted as whole words.",
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return f"[{self.label}] {self.pattern}"


# --- retention (calls/retention.py) -------------------------------------------------------------------


class RetentionPolicy(models.Model):
    """How long one kind of call's data is kept. Calls no policy matches keep the RETENTION_* settings.

    A policy matches every call, or only calls of one direction and/or to one ACS phone number or
    identity; the lowest priority number that matches wins.
    """

    name = models.CharField(max_length=100, unique=True)
    priority = models.PositiveIntegerField(default=100, help_text="Lower numbers are tried first.")
    direction = models.CharField(
        max_length=10, choices=Call.Direction.choices, blank=True, help_text="Empty: any direction."
    )
    called = models.CharField(
        max_length=300,
        blank=True,
        help_text="The ACS phone number (+14255550100) or identity (8:acs:…) that was called. Empty: any.",
    )
    transcript_days = models.PositiveIntegerField(help_text="Transcript, segments and participants' identities.")
    audio_days = models.PositiveIntegerField(help_text="Captured audio files.")
    events_days = models.PositiveIntegerField(help_text="The call's event history.")
    access_log_days = models.PositiveIntegerField(help_text="Who viewed, exported or controlled the call.")

    class Meta:
        ordering = ["priority", "id"]
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return self.name


class CallRetention(models.Model):
    """A call's policy, when each part of it expires, and when it was purged and by which rule.

    Once everything is purged the call row and this are the tombstone: enough for volume statistics
    and proof of deletion, nothing about who spoke or what was said.
    """

    call = models.OneToOneField(Call, on_delete=models.CASCADE, primary_key=True, related_name="retention")
    policy = models.ForeignKey(RetentionPolicy, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    policy_name = models.CharField(max_length=100, help_text="As it was named when the dates were computed.")
    transcript_expires_at = models.DateTimeField()
    audio_expires_at = models.DateTimeField()
    events_expires_at = models.DateTimeField()
    access_log_days = models.PositiveIntegerField()
    transcript_purged_at = models.DateTimeField(null=True, blank=True)
    transcript_purged_by = models.CharField(max_length=300, blank=True)
    audio_purged_at = models.DateTimeField(null=True, blank=True)
    audio_purged_by = models.CharField(max_length=300, blank=True)
    events_purged_at = models.DateTimeField(null=True, blank=True)
    events_purged_by = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["transcript_expires_at"],
                condition=models.Q(transcript_purged_at__isnull=True),
                name="retention_transcript_due_idx",
            ),
            models.Index(
                fields=["audio_expires_at"],
                condition=models.Q(audio_purged_at__isnull=True),
                name="retention_audio_due_idx",
            ),
            models.Index(
                fields=["events_expires_at"],
                condition=models.Q(events_purged_at__isnull=True),
                name="retention_events_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy_name} for {self.call_id}"

    @property
    def parts(self) -> list[RetainedPart]:
        """Each part's expiry and purge, as the call page and the admin show them."""
        return [
            RetainedPart(
                label,
                getattr(self, f"{part}_expires_at"),
                getattr(self, f"{part}_purged_at"),
                getattr(self, f"{part}_purged_by"),
            )
            for part, label in (("transcript", "Transcript"), ("audio", "Audio"), ("events", "History"))
        ]


@dataclass(frozen=True)
class RetainedPart:
    label: str
    expires_at: datetime
    purged_at: datetime | None
    purged_by: str


class DeletionReceipt(models.Model):
    """Proof of a deletion, kept in the audit log after the data is gone: what went, how much, by which rule."""

    class Kind(models.TextChoices):
        EXPIRY = "expiry", "Expired under a retention policy"
        DELETION = "deletion", "Call deleted by staff"
        ERASURE = "erasure", "Erasure request for a person"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    rule = models.CharField(max_length=300, help_text="The policy, or who asked and why.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    call_ids = models.JSONField(default=list, blank=True, help_text="Every call something was deleted from.")
    segments = models.PositiveIntegerField(default=0)
    participants = models.PositiveIntegerField(default=0)
    events = models.PositiveIntegerField(default=0)
    access_logs = models.PositiveIntegerField(default=0)
    audio_files = models.PositiveIntegerField(default=0)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        # Deleting a call leaves its tombstone and this receipt (calls/deletion.py); Django's own
        # delete_call permission would cascade the rows away and leave the files.
        permissions = [("delete_calls", "Can delete calls")]

    def __str__(self) -> str:
        return f"Receipt {self.pk}: {self.get_kind_display()} ({self.rule})"


class LegalHold(models.Model):
    """While a hold is in force (not released), the calls it covers are never purged or deleted.

    It covers one call, or every call a participant identity or phone number took part in, started
    within a date range (calls/holds.py).
    """

    call = models.ForeignKey(Call, on_delete=models.PROTECT, null=True, blank=True, related_name="legal_holds")
    identity = models.CharField(
        max_length=300,
        blank=True,
        help_text="A phone number (+14255550100) or ACS identity (8:acs:…): every call it took part in.",
    )
    date_from = models.DateField(null=True, blank=True, help_text="With an identity: calls started on or after.")
    date_to = models.DateField(null=True, blank=True, help_text="With an identity: calls started on or before.")
    reason = models.TextField()
    case_reference = models.CharField(max_length=200)
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    placed_at = models.DateTimeField(auto_now_add=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        permissions = [("place_legal_hold", "Can place legal hold")]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(call__isnull=False) & models.Q(identity=""))
                | (models.Q(call__isnull=True) & ~models.Q(identity="")),
                name="legal_hold_covers_a_call_or_an_identity",
            )
        ]

    def __str__(self) -> str:
        return f"Legal hold {self.case_reference}"

    @property
    def in_force(self) -> bool:
        return self.released_at is None

    def clean(self) -> None:
        if bool(self.call_id) == bool(self.identity.strip()):
            raise ValidationError("A hold covers either one call or an identity (with an optional date range).")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValidationError("The start date is after the end date.")


# --- agents and teams (who sees which call: calls/permissions.py) ----------------------------------------


class Agent(models.Model):
    """A staff member who takes calls, and the ACS identities they answer as (AgentIdentity)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent")

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        """What pages call them: "Agent Sam Ortega" (Participant.label)."""
        return self.user.get_full_name() or self.user.get_username()


class AgentIdentity(models.Model):
    """One ACS identity an agent answers as: an ACS user (8:acs:…), a Teams user (8:orgid:…) or a phone
    number (+14255550100) for an agent on the PSTN. An identity belongs to one agent."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="identities")
    raw_id = models.CharField(
        max_length=300,
        unique=True,
        verbose_name="ACS identity",
        help_text="8:acs:…, 8:orgid:…, or a phone number (+14255550100).",
    )

    class Meta:
        ordering = ["raw_id"]
        verbose_name_plural = "agent identities"

    def __str__(self) -> str:
        return self.raw_id

    def clean(self) -> None:
        self.raw_id = raw_id_of(self.raw_id)


class Team(models.Model):
    """Agents (members) and the users who supervise them: a supervisor sees every call a member took
    part in, and the calls to the numbers and identities routed to the team (TeamRoute)."""

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(Agent, related_name="teams", blank=True)
    supervisors = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="supervised_teams", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamRoute(models.Model):
    """Calls to this ACS number or identity belong to the team, whoever answers: the way calls no agent
    joins (an IVR, a queue that rang out) reach a supervisor."""

    called = models.CharField(
        max_length=300,
        unique=True,
        verbose_name="number or identity called",
        help_text="The ACS phone number (+14255550100) or identity (8:acs:…) the caller dialled.",
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="routes")

    class Meta:
        ordering = ["called"]

    def __str__(self) -> str:
        return f"{self.called} → {self.team}"

    def clean(self) -> None:
        self.called = raw_id_of(self.called)
