from __future__ import annotations

from django.urls import path

from calls import views

urlpatterns = [
    path("", views.home, name="home"),
    path("calls/", views.call_list, name="calls-list"),
    path("calls/<uuid:call_id>/", views.call_detail, name="calls-detail"),
    path("calls/<uuid:call_id>/transcript.<str:export_format>", views.transcript_download, name="calls-transcript"),
]
