from __future__ import annotations

import io
import zipfile
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from calls import (  # noqa: F401 - redaction_rules' signals clear the rules cache
    audit,
    control_views,
    deletion,
    erasure,
    holds,
    redaction_rules,
    retention,
    search,
)
from calls.display import call_page_context
from calls.exports import export_transcript
from calls.models import (
    AccessLog,
    Agent,
    AgentIdentity,
    ApiToken,
    Call,
    CallEvent,
    CallRetention,
    DeletionReceipt,
    Gap,
    LegalHold,
    MediaStream,
    Participant,
    RedactionRule,
    RetentionPolicy,
    Team,
    TeamRoute,
    TranscriptSegment,
    parse_uuid,
)
from calls.permissions import CONTROL_PERMISSION, can_watch, scope_of, visible_calls


class WatchersMayView:
    """Whoever may watch calls on the dashboard may read them in the admin too (the staff menu links
    there); changing anything still takes Django's model permissions."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or can_watch(request.user)


class ScopedByCall:
    """Rows of calls (participants, streams, gaps, events) as far as the user may see their call
    (calls/permissions.py): out of scope they are not listed, and their pages answer as for a row that
    does not exist."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(scope_of(request.user).filter("call__"))


class ReadOnlyInline(WatchersMayView, admin.TabularInline):
    can_delete = False
    extra = 0
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TranscriptSegmentInline(ReadOnlyInline):
    """The transcript for those who may read calls in the admin but not watch them (watchers get the
    live panel instead)."""

    model = TranscriptSegment
    fields = ["sequence", "participant_raw_id", "text", "shown_confidence", "offset_ms", "duration_ms"]
    readonly_fields = fields
    ordering = ["sequence"]

    @admin.display(description="confidence")
    def shown_confidence(self, segment: TranscriptSegment) -> str:
        return "" if segment.confidence is None else f"{segment.confidence:.0%}"


class CallEventInline(ReadOnlyInline):
    model = CallEvent
    fields = ["time", "type", "result_code", "result_subcode", "result_message"]
    readonly_fields = fields
    ordering = ["time", "id"]
    verbose_name_plural = "history"


class GapInline(ReadOnlyInline):
    model = Gap
    fields = ["reason", "started_at", "ended_at", "detail"]
    readonly_fields = fields


class HasGapsFilter(admin.SimpleListFilter):
    title = "gaps"
    parameter_name = "has_gaps"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Has gaps"), ("no", "No gaps")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> QuerySet[Call]:
        gaps = Exists(Gap.objects.filter(call=OuterRef("pk")))
        if self.value() == "yes":
            return queryset.filter(gaps)
        if self.value() == "no":
            return queryset.exclude(gaps)
        return queryset


@admin.register(Call)
class CallAdmin(WatchersMayView, admin.ModelAdmin):
    list_display = [
        "label",
        "direction",
        "state",
        "media_streaming_status",
        "transcription_status",
        "segment_count",
        "has_gaps",
        "created_at",
    ]
    list_filter = ["state", "direction", HasGapsFilter, "media_streaming_status", "transcription_status", "created_at"]
    # Transcript text is searched too, with full-text search: see get_search_results.
    search_fields = ["call_connection_id", "correlation_id", "caller", "callee", "caller_display_name"]
    search_help_text = 'Searches ids, numbers and names, and transcripts ("quoted phrase", -word).'
    date_hierarchy = "created_at"
    readonly_fields = [*(field.name for field in Call._meta.fields if field.name != "agent_ids"), "agents"]
    inlines = [GapInline, TranscriptSegmentInline, CallEventInline]
    actions = ["export_transcripts", *control_views.ADMIN_ACTIONS]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Call]:
        return search.with_summary(visible_calls(request.user, super().get_queryset(request)))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Call], search_term: str
    ) -> tuple[QuerySet[Call], bool]:
        matches, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            audit.record_request(request, None, audit.SEARCH, f"admin: {search_term.strip()}")
            in_transcript = TranscriptSegment.objects.filter(
                call=OuterRef("pk"), search_vector=search.transcript_query(search_term)
            )
            matches = matches | queryset.filter(Exists(in_transcript))
        return matches, may_have_duplicates

    @admin.display(description="call", ordering="created_at")
    def label(self, call: Call) -> str:
        return call.label

    @admin.display(description="agents who took part")
    def agents(self, call: Call) -> str:
        return ", ".join(agent.name for agent in Agent.objects.filter(pk__in=call.agent_ids).select_related("user"))

    @admin.display(description="lines", ordering="segment_count")
    def segment_count(self, call: Call) -> int:
        return call.segment_count

    @admin.display(description="gaps", ordering="has_gaps")
    def has_gaps(self, call: Call) -> str:
        return "Yes" if call.has_gaps else "No"  # as the dashboard says it: a gap is no success to tick

    def get_inlines(self, request: HttpRequest, obj: Call | None) -> list[type[admin.options.InlineModelAdmin]]:
        if can_watch(request.user):  # the live panel above shows the transcript
            return [inline for inline in self.inlines if inline is not TranscriptSegmentInline]
        return self.inlines

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Adds the live transcript panel (templates/admin/calls/call/change_form.html) for watchers."""
        extra_context = extra_context or {}
        calls = visible_calls(request.user).prefetch_related("participants", "streams", "gaps")
        call = calls.filter(pk=object_id).first() if parse_uuid(object_id) else None
        if call is not None and can_watch(request.user):
            audit.record_request(request, call, audit.VIEW, "admin")
            extra_context["live_panel"] = call_page_context(call)
        return super().change_view(request, object_id, form_url, extra_context)

    def has_control_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CONTROL_PERMISSION)

    @admin.action(description="Export transcripts (zip of JSON)", permissions=["view"])
    def export_transcripts(self, request: HttpRequest, queryset: QuerySet[Call]) -> HttpResponse:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for call in queryset:
                archive.writestr(f"call-{call.id}.json", export_transcript(call, "json"))
                audit.record_request(request, call, audit.EXPORT, "json (admin export)")
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="transcripts.zip"'
        return response


class AuditRecordAdmin(admin.ModelAdmin):
    """Audit records are evidence: shown here, never added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AccessLog)
class AccessLogAdmin(AuditRecordAdmin):
    list_display = ["at", "user", "ip", "action", "call", "detail"]
    list_filter = ["action", "at"]
    list_select_related = ["user", "call"]
    search_fields = ["user__username", "call__id", "detail"]
    date_hierarchy = "at"


@admin.register(MediaStream, Gap, CallEvent)
class CallRowAdmin(ScopedByCall, admin.ModelAdmin):
    list_select_related = ["call"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are made with `manage.py create_api_token`, which shows the key once; here they are seen
    and revoked."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    list_select_related = ["user"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        messages.success(request, f"Revoked {revoked} token(s): they no longer work.")


@admin.register(RedactionRule)
class RedactionRuleAdmin(admin.ModelAdmin):
    """A deployment's own redaction rules; the pattern is checked on save (RedactionRule's validator) and
    applies to new results within a minute (calls/redaction_rules.py). Stored calls need redact_existing."""

    list_display = ["label", "pattern", "enabled", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["label", "pattern"]


# --- retention (calls/retention.py) -------------------------------------------------------------------


class CallRetentionInline(ReadOnlyInline):
    """The call's policy, its expiry dates and what was purged when: the tombstone once it has all gone."""

    model = CallRetention
    fields = [
        "policy_name",
        "transcript_expires_at",
        "transcript_purged_at",
        "transcript_purged_by",
        "audio_expires_at",
        "audio_purged_at",
        "audio_purged_by",
        "events_expires_at",
        "events_purged_at",
        "events_purged_by",
        "access_log_days",
    ]
    readonly_fields = fields
    verbose_name = verbose_name_plural = "retention"


CallAdmin.inlines = [CallRetentionInline, *CallAdmin.inlines]


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    """Saving or deleting a policy recomputes the expiry dates of every ended call (in batches)."""

    list_display = ["name", "priority", "direction", "called", "transcript_days", "audio_days", "events_days"]
    list_editable = ["priority"]
    ordering = ["priority", "id"]

    def save_model(self, request: HttpRequest, obj: RetentionPolicy, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        self._recompute(request)

    def delete_model(self, request: HttpRequest, obj: RetentionPolicy) -> None:
        super().delete_model(request, obj)
        self._recompute(request)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RetentionPolicy]) -> None:
        super().delete_queryset(request, queryset)
        self._recompute(request)

    def _recompute(self, request: HttpRequest) -> None:
        changed = retention.recompute_expiry()
        self.message_user(request, f"Expiry dates recomputed: {changed} calls changed.")


@admin.register(DeletionReceipt)
class DeletionReceiptAdmin(AuditRecordAdmin):
    """The audit log's proof of deletions: never changed or deleted here."""

    list_display = ["started_at", "kind", "rule", "user", "segments", "participants", "events", "audio_files"]
    list_filter = ["kind", "started_at"]
    search_fields = ["rule", "detail", "call_ids"]
    date_hierarchy = "started_at"
    readonly_fields = [field.name for field in DeletionReceipt._meta.fields]


# --- legal hold (calls/holds.py) -----------------------------------------------------------------------


class UnderHoldFilter(admin.SimpleListFilter):
    title = "legal hold"
    parameter_name = "on_hold"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Under legal hold"), ("no", "Not held")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> QuerySet[Call]:
        if self.value() == "yes":
            return holds.held(queryset)
        if self.value() == "no":
            return queryset.exclude(pk__in=holds.held(Call.objects.all()).values("pk"))
        return queryset


class LegalHoldsOfCallInline(ReadOnlyInline):
    """Holds placed on this one call (holds on an identity are listed under Legal holds)."""

    model = LegalHold
    fields = ["case_reference", "reason", "placed_by", "placed_at", "released_by", "released_at"]
    readonly_fields = fields


class RetentionCallAdmin(CallAdmin):
    """The call admin, with retention and holds. Its delete goes through calls/deletion.py: files go
    too, a tombstone and a receipt stay; held and live calls are refused, alone or in bulk."""

    inlines = [CallRetentionInline, LegalHoldsOfCallInline, *CallAdmin.inlines]
    list_filter = [UnderHoldFilter, *CallAdmin.list_filter]

    def has_delete_permission(self, request: HttpRequest, obj: Call | None = None) -> bool:
        if not request.user.has_perm(deletion.DELETE_PERMISSION):
            return False
        if obj is None:
            return True
        try:
            deletion.check_deletable(obj)
        except deletion.DeletionRefused:
            return False
        return True

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None) -> Any:
        """One call is deleted on its own page, with the typed confirmation and a reason."""
        call = Call.objects.filter(pk=object_id).first()
        if call is None or not self.has_delete_permission(request, call):
            raise PermissionDenied
        return redirect("calls-delete", call.pk)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list[str], dict[str, int], set, list]:
        """What the bulk delete's confirmation page lists: a purge, not Django's cascade."""
        calls = list(objs)
        described = [f"{call}: transcript, participants, audio files and history (a tombstone stays)" for call in calls]
        return described, {"calls": len(calls)}, set(), []

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Call]) -> None:
        refused = []
        for call in queryset:
            try:
                deletion.delete_call(call, user=request.user, reason="Deleted in bulk in the admin")
            except deletion.DeletionRefused as refusal:
                refused.append(f"{call.pk}: {refusal}")
        if refused:
            held = sum("legal hold" in line for line in refused)
            summary = f"Not deleted: {len(refused)} calls ({held} under legal hold). " + " ".join(refused)
            self.message_user(request, summary, messages.ERROR)

    def delete_model(self, request: HttpRequest, obj: Call) -> None:
        deletion.delete_call(obj, user=request.user, reason="Deleted in the admin")


admin.site.unregister(Call)
admin.site.register(Call, RetentionCallAdmin)


@admin.register(LegalHold)
class LegalHoldAdmin(admin.ModelAdmin):
    """Placing and releasing holds takes calls.place_legal_hold; holds are never deleted (evidence)."""

    list_display = [
        "case_reference",
        "call",
        "identity",
        "date_from",
        "date_to",
        "placed_by",
        "placed_at",
        "released_at",
    ]
    list_filter = [("released_at", admin.EmptyFieldListFilter), "placed_at"]
    search_fields = ["case_reference", "reason", "identity", "call__id"]
    raw_id_fields = ["call"]
    fields = ["call", "identity", "date_from", "date_to", "reason", "case_reference"]
    actions = ["release_holds"]

    def get_readonly_fields(self, request: HttpRequest, obj: LegalHold | None = None) -> list[str]:
        if obj is None:
            return []
        return [*self.fields, "placed_by", "placed_at", "released_by", "released_at"]

    def get_fields(self, request: HttpRequest, obj: LegalHold | None = None) -> list[str]:
        return self.get_readonly_fields(request, obj) or self.fields

    def _may_hold(self, request: HttpRequest) -> bool:
        return request.user.has_perm(holds.PLACE_PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_hold(request) or super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_hold(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a hold is placed, then released; never edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_release_permission(self, request: HttpRequest) -> bool:
        return self._may_hold(request)

    def save_model(self, request: HttpRequest, obj: LegalHold, form: Any, change: bool) -> None:
        holds.place(obj, request.user)

    @admin.action(description="Release selected legal holds", permissions=["release"])
    def release_holds(self, request: HttpRequest, queryset: QuerySet[LegalHold]) -> None:
        released = sum(holds.release(hold, request.user) for hold in queryset)
        self.message_user(
            request, f"Released {released} legal holds; their calls are purged on the next run if expired."
        )


# --- requests by a person (calls/erasure.py) ------------------------------------------------------------


class ErasableParticipantAdmin(ScopedByCall, admin.ModelAdmin):
    """Participants, with the erasure request: every call of each selected person is purged."""

    list_display = ["label", "raw_id", "kind", "role", "call", "first_seen_at"]
    list_filter = ["role"]
    search_fields = ["raw_id", "display_name"]
    list_select_related = ["call"]
    actions = ["erase_people"]

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(deletion.DELETE_PERMISSION)

    @admin.action(description="Erase these people from every call (GDPR art. 17)", permissions=["erase"])
    def erase_people(self, request: HttpRequest, queryset: QuerySet[Participant]) -> None:
        identities = sorted({participant.raw_id for participant in queryset if participant.raw_id})
        for identity in identities:
            result = erasure.erase_participant(identity, user=request.user, reason="Erasure in the admin")
            receipt = f" (receipt {result.receipt.pk})" if result.receipt else ""
            self.message_user(request, f"{erasure.masked(identity)}: erased {len(result.erased)} calls{receipt}.")
            skipped = [f"{call.pk} (legal hold)" for call in result.held] + [
                f"{call.pk} (live)" for call in result.live
            ]
            if skipped:
                self.message_user(
                    request, f"{erasure.masked(identity)}: skipped {', '.join(skipped)}.", messages.WARNING
                )


admin.site.register(Participant, ErasableParticipantAdmin)


# --- agents and teams (calls/permissions.py) -------------------------------------------------------------


class AgentIdentityInline(admin.TabularInline):
    model = AgentIdentity
    extra = 1


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    """An agent answers as their identities; calls they join from now on are theirs (and their teams')."""

    list_display = ["name", "user", "identity_list", "team_list"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "identities__raw_id"]
    inlines = [AgentIdentityInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        return super().get_queryset(request).select_related("user").prefetch_related("identities", "teams")

    @admin.display(description="identities")
    def identity_list(self, agent: Agent) -> str:
        return ", ".join(identity.raw_id for identity in agent.identities.all())

    @admin.display(description="teams")
    def team_list(self, agent: Agent) -> str:
        return ", ".join(team.name for team in agent.teams.all())


class TeamRouteInline(admin.TabularInline):
    model = TeamRoute
    extra = 1


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    """Supervisors see the calls of the team's agents, and the calls to the numbers routed to the team."""

    list_display = ["name", "member_count", "supervisor_list"]
    search_fields = ["name"]
    filter_horizontal = ["members", "supervisors"]
    inlines = [TeamRouteInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).prefetch_related("members", "supervisors")

    @admin.display(description="agents")
    def member_count(self, team: Team) -> int:
        return len(team.members.all())

    @admin.display(description="supervisors")
    def supervisor_list(self, team: Team) -> str:
        return ", ".join(user.get_username() for user in team.supervisors.all())
