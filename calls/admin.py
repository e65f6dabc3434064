from __future__ import annotations

from django.contrib import admin

from calls.models import Call, CallEvent, Gap, MediaStream, Participant, TranscriptSegment


class TranscriptSegmentInline(admin.TabularInline):
    model = TranscriptSegment
    fields = ["sequence", "participant_raw_id", "text", "confidence", "offset_ms", "duration_ms"]
    readonly_fields = fields
    can_delete = False
    extra = 0
    ordering = ["sequence"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Call)
class CallAdmin(admin.ModelAdmin):
    list_display = ["__str__", "direction", "caller", "callee", "state", "created_at"]
    list_filter = ["state", "direction", "created_at"]
    search_fields = ["call_connection_id", "caller", "callee", "caller_display_name", "segments__text"]
    readonly_fields = ["id", "last_sequence", "created_at"]
    inlines = [TranscriptSegmentInline]


admin.site.register([Participant, MediaStream, Gap, CallEvent])
