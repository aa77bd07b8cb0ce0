"""What every HTTP response of the demo server carries: JSON errors and security headers.

Pure helpers; app.py attaches them to quart (an error handler per HTTP status, an
`after_request` hook for the headers).
"""

from __future__ import annotations

from typing import Any, Final

# Every HTTP error body is {"error": {"code", "message"}}; these are the codes for the statuses
# werkzeug raises by itself (the endpoints raise their own, more specific codes).
STATUS_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    500: "internal",
}

# The page loads only its own scripts, styles and worklets and talks only to its own origin
# (`connect-src 'self'` covers ws:/wss: to the same host in CSP level 3). Nothing may frame it.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

SSE_HEADERS: Final = {
    "Content-Type": "text/event-stream; charset=utf-8",
    # No proxy or CDN may cache or buffer a stream; nginx honours X-Accel-Buffering.
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def error_json(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def status_code(status: int) -> str:
    """The error code for a status no endpoint named more precisely."""
    return STATUS_CODES.get(status, "bad_request" if status < 500 else "internal")


def is_json_media_type(content_type: str | None) -> bool:
    """`application/json`, parameters (charset) allowed, case-insensitive."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"
