"""What the three OpenAI-compatible engines share: where to connect, and how failures read."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2
import openai

# Local servers (vLLM, llama.cpp, Ollama) need no key, but the SDK refuses to start without one.
NO_KEY = "sk-no-key-required"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Cleanup that awaits (closing an HTTP stream) runs shielded, and this bounds it.
CLOSE_BOUND = 1.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One OpenAI-compatible service. None falls back to OPENAI_BASE_URL / OPENAI_API_KEY."""

    base_url: str | None = None
    model: str = "gpt-4o-mini"
    api_key: str | None = None

    def resolved_url(self) -> str:
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL

    @property
    def label(self) -> str:
        """Short name for messages: host[:port]/model."""
        return f"{urlsplit(self.resolved_url()).netloc or self.resolved_url()}/{self.model}"


def make_client(
    endpoint: Endpoint, http_client: httpx2.AsyncClient | None = None
) -> openai.AsyncOpenAI:
    """An SDK client with retries off: failing over (or not) is the engine's decision."""
    return openai.AsyncOpenAI(
        base_url=endpoint.resolved_url(),
        api_key=endpoint.api_key or os.environ.get("OPENAI_API_KEY") or NO_KEY,
        max_retries=0,
        http_client=http_client,
    )


def describe(exc: BaseException) -> str:
    """A one-line account of an SDK or transport failure, for error messages."""
    if isinstance(exc, openai.APITimeoutError):
        return "request timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f": {type(cause).__name__}: {cause}" if cause else ""
        return f"connection failed{detail}"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {_server_message(exc)}"
    return f"{type(exc).__name__}: {exc}"


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    return exc.message


def is_transient(exc: BaseException) -> bool:
    """Failures another endpoint may not have: unreachable, overloaded, server-side errors."""
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in (408, 409, 429)
    # An error event inside an SSE stream (no status code) is the server's failure.
    return type(exc) is openai.APIError


class LazyClient:
    """One endpoint's SDK client, made on first use and closed by `aclose` (unless the caller
    lent its own `httpx2` client, which stays the caller's to close)."""

    def __init__(self, endpoint: Endpoint, http_client: httpx2.AsyncClient | None) -> None:
        self.endpoint = endpoint
        self._http_client = http_client
        self._client: openai.AsyncOpenAI | None = None

    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = make_client(self.endpoint, self._http_client)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._http_client is None:
            await client.close()
