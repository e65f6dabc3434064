"""A tiny stdlib client for the control API, shared by the CLI and the test helper."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ControlAPIError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def http_json(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        raise ControlAPIError(error.code, error.read().decode(errors="replace")) from error
    return json.loads(text) if text else None
