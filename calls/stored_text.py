"""What PostgreSQL's text and jsonb cannot hold: U+0000. Media frames (streaming/packets.py) and webhook
bodies (calls/webhooks.py) carrying it are refused before anything is stored."""

from __future__ import annotations

# JSON's only way to write U+0000 (a raw one is invalid JSON).
NUL_ESCAPE = "\\u0000"
NUL_ESCAPE_BYTES = NUL_ESCAPE.encode()
