"""Serving captured call audio with HTTP Range support, so the browser's player can seek."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404

from calls import audit
from calls.audio_files import mix_down, participant_audio_path
from calls.models import Call, Participant
from calls.permissions import visible_calls
from calls.views import staff_watch_required

CHUNK_BYTES = 64 * 1024
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class UnsatisfiableRange(Exception):
    pass


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single-range `Range` header, or None to send the whole file.

    Several ranges or a malformed header are ignored (RFC 9110 allows a full response instead).
    """
    match = RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the final N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise UnsatisfiableRange
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise UnsatisfiableRange
    return start, end


async def _file_chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    file = await asyncio.to_thread(path.open, "rb")
    try:
        await asyncio.to_thread(file.seek, start)
        while length > 0:
            chunk = await asyncio.to_thread(file.read, min(CHUNK_BYTES, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        file.close()


def wav_response(request: HttpRequest, path: Path, filename: str) -> HttpResponse:
    size = path.stat().st_size
    try:
        byte_range = parse_range(request.headers.get("Range", ""), size)
    except UnsatisfiableRange:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    start, end = byte_range or (0, size - 1)
    response = StreamingHttpResponse(
        _file_chunks(path, start, end - start + 1), status=206 if byte_range else 200, content_type="audio/wav"
    )
    if byte_range:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "private, no-cache"  # a live call's file keeps growing
    return response


def _record_download(request: HttpRequest, call: Call, detail: str) -> None:
    """The player fetches many ranges while seeking; only a fetch from the first byte is a new listen."""
    header = request.headers.get("Range", "")
    if not header or header.startswith("bytes=0-"):
        audit.record_request(request, call, audit.AUDIO, detail)


@staff_watch_required
def participant_audio(request: HttpRequest, call_id: uuid.UUID, participant_id: int) -> HttpResponse:
    if not settings.AUDIO_CAPTURE:
        raise Http404("Audio capture is off")
    call = get_object_or_404(visible_calls(request.user), pk=call_id)
    participant = get_object_or_404(Participant.objects.filter(call=call), pk=participant_id)
    path = participant_audio_path(participant)
    if not path.is_file():
        raise Http404("No audio for this participant")
    _record_download(request, call, participant.raw_id)
    return wav_response(request, path, f"call-{call_id}-{path.name}")


@staff_watch_required
def mixed_audio(request: HttpRequest, call_id: uuid.UUID) -> HttpResponse:
    if not settings.AUDIO_CAPTURE:
        raise Http404("Audio capture is off")
    call = get_object_or_404(visible_calls(request.user).prefetch_related("participants"), pk=call_id)
    path = mix_down(call)
    if path is None:
        raise Http404("No audio for this call")
    _record_download(request, call, "mixed")
    return wav_response(request, path, f"call-{call_id}-mixed.wav")
