from __future__ import annotations

from django.urls import include, path

from calls import api_views, audio_views, control_views, deletion_views, reveal_views, views, webhooks

# Staff controls (calls/control_views.py): POST only, no trailing slash.
control_urls = [
    path("streaming/start", control_views.start_streaming, name="calls-streaming-start"),
    path("streaming/stop", control_views.stop_streaming, name="calls-streaming-stop"),
    path("transcription/start", control_views.start_transcription, name="calls-transcription-start"),
    path("transcription/stop", control_views.stop_transcription, name="calls-transcription-stop"),
    path("pause", control_views.pause_call, name="calls-pause"),
    path("resume", control_views.resume_call, name="calls-resume"),
    path("hangup", control_views.hang_up, name="calls-hangup"),
]

# The JSON API for integrations (calls/api_views.py): POST with an API token; a call by its id or ACS's
# callConnectionId.
api_urls = [
    path("pause", api_views.pause_call, name="api-calls-pause"),
    path("resume", api_views.resume_call, name="api-calls-resume"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("calls/", views.call_list, name="calls-list"),
    path("calls/<uuid:call_id>/", views.call_detail, name="calls-detail"),
    path("calls/<uuid:call_id>/transcript.<str:export_format>", views.transcript_download, name="calls-transcript"),
    path("calls/<uuid:call_id>/audio/<int:participant_id>.wav", audio_views.participant_audio, name="calls-audio"),
    path("calls/<uuid:call_id>/audio/mixed.wav", audio_views.mixed_audio, name="calls-audio-mix"),
    path("calls/<uuid:call_id>/access", views.access_history, name="calls-access-history"),
    path("calls/<uuid:call_id>/delete", deletion_views.delete_call, name="calls-delete"),
    # Revealing redacted data (calls/reveal_views.py): a reason first, every look in the access log.
    path(
        "calls/<uuid:call_id>/segments/<int:segment_id>/reveal",
        reveal_views.reveal_segment,
        name="calls-reveal-segment",
    ),
    path(
        "calls/<uuid:call_id>/transcript-original", reveal_views.original_transcript, name="calls-transcript-original"
    ),
    path("calls/new", control_views.new_call, name="calls-new"),
    path("calls/<uuid:call_id>/", include(control_urls)),
    path("api/calls/<str:call_ref>/", include(api_urls)),
    # ACS webhooks (calls/webhooks.py).
    path("api/callbacks", webhooks.callbacks, name="acs-callbacks"),
    path("api/incoming-call", webhooks.incoming_call, name="acs-incoming-call"),
]
