"""Plain HTTP clients that never close their end, against the real hypercorn server: the server
closes the connection itself once the response says so (`Connection: close`, HTTP/1.0) or once
a kept-alive connection idles (hypercorn's `keep_alive_timeout`). Under quart-trio, quart's
handler nursery cancelled hypercorn's close (it is done inside the last `send`): every such
client held a server socket until it left (200 clients: 200 fds)."""

from __future__ import annotations

import pytest
import trio

from bargein.testing.web import running
from bargein.transports.app import DemoServer

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound


async def response_then_eof(port: int, request: bytes) -> bytes:
    """Send `request`, read until the server closes; what it sent."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(request)
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    await stream.aclose()
    return data


REQUESTS = [
    ("connection close", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
     b"HTTP/1.1 200"),
    ("http/1.0", b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", b"HTTP/1.1 200"),
    ("refused host", b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
     b"HTTP/1.1 403"),
    ("not found", b"GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
     b"\r\n", b"HTTP/1.1 404"),
    ("kept alive, then idle", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"HTTP/1.1 200"),
]


@pytest.mark.parametrize(("request_bytes", "status"), [r[1:] for r in REQUESTS],
                         ids=[r[0] for r in REQUESTS])
async def test_the_server_closes_an_http_connection_the_client_keeps(
    request_bytes: bytes, status: bytes
) -> None:
    with trio.fail_after(HANG_GUARD):
        async with running(DemoServer()) as port:
            data = await response_then_eof(port, request_bytes)
    assert data.startswith(status), data[:80]


UPGRADES = [
    ("no key", b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    ("version 8", b"GET /v1/realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     b"Sec-WebSocket-Version: 8\r\n\r\n"),
]


@pytest.mark.parametrize("request_bytes", [u[1] for u in UPGRADES], ids=[u[0] for u in UPGRADES])
async def test_a_malformed_websocket_upgrade_is_answered_400_and_closed(
    request_bytes: bytes,
) -> None:
    # hypercorn answers it itself (the app never sees it) and did not close the connection.
    with trio.fail_after(HANG_GUARD):
        async with running(DemoServer()) as port:
            data = await response_then_eof(port, request_bytes)
    assert data.startswith(b"HTTP/1.1 400"), data[:80]
