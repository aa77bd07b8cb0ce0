"""Twilio's request signature (`X-Twilio-Signature`), checked on the WebSocket upgrade.

Twilio signs each request with the account's auth token: base64(HMAC-SHA1(auth token, the full
URL it requested, then, for a POST, every form parameter name+value sorted by name)). A Media
Streams upgrade is a GET, so the signed string is the URL alone - exactly as written in the
TwiML `<Stream url="wss://...">`, which behind a reverse proxy is not what this server sees:
configure that public URL (docs/telephony.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    signed = url + "".join(k + v for k, v in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_signature_ok(auth_token: str, url: str, given: str | None) -> bool:
    if not given:
        return False
    expected = twilio_signature(auth_token, url)
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode())


def public_url(base: str | None, host: str, path: str, query: str = "") -> str:
    """The URL the carrier connected to: `base` (scheme://host[:port], from the operator)
    or wss://<Host header>, then the path and query this server saw."""
    root = (base or f"wss://{host}").rstrip("/")
    return root + path + (f"?{query}" if query else "")
