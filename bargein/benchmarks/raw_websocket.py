"""A minimal RFC 6455 WebSocket client for load runs: the measuring instrument, made cheap.

`bench load` runs hundreds of real-time clients in one process beside the server on the same
cores; through trio-websocket (wsproto) a client cost ~0.33 % of a core (66 % of a core for
200), most of it per-frame Python (a lock, a shielded send, wsproto's frame builder and parser)
and a task wake-up per 20 ms frame. Here, per connection:

- the opening handshake (RFC 6455 4.1): a GET with `Upgrade: websocket` and a random
  `Sec-WebSocket-Key`; anything but a 101 whose `Sec-WebSocket-Accept` matches is refused
  (`HandshakeRefused`, with the status);
- every client frame masked (5.3) with its own random key; `client_frames` masks a batch of
  payloads (an utterance's audio) in one numpy pass, `client_frame` one message;
- server frames parsed by `ServerFrames` (pure: bytes in, messages out): text, binary,
  fragments (continuation frames), ping, pong, close. A masked server frame, RSV bits, an
  unknown opcode, a fragmented or oversized control frame, a continuation without a start or a
  message past `max_message` is a `ProtocolViolation`. Pings are answered with a pong of the
  same payload and a close with a close, as RFC 6455 requires (the server's liveness check
  counts on the pongs);
- a non-blocking stdlib socket: `write` hands the bytes to the kernel at once, in the caller's
  task (no task switch, no lock); what the kernel does not take waits in the connection's
  outbox, which `run_writer` flushes in order, so frames never interleave.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from collections.abc import Sequence

import numpy as np
import trio

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_DATA_OPS = (OP_TEXT, OP_BINARY)
_CONTROL_OPS = (OP_CLOSE, OP_PING, OP_PONG)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_FIN, _MASK = 0x80, 0x80
NORMAL_CLOSURE = 1000
MAX_HEAD = 65536  # bytes of handshake response we read before giving up

Message = tuple[int, bytes]  # (opcode, payload): OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE


class ProtocolViolation(Exception):
    """The server sent something RFC 6455 does not allow a server to send."""


class HandshakeRefused(Exception):
    """The server did not switch protocols (status, e.g. 403 or 503), or answered wrongly."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status


class ConnectionClosed(Exception):
    """The connection is closed (by the peer, or after our close)."""


def accept_key(key: bytes) -> str:
    """The `Sec-WebSocket-Accept` a server must answer to `Sec-WebSocket-Key: key` (4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()


def handshake_request(host: str, path: str, key: bytes) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def check_handshake_response(head: bytes, key: bytes) -> None:
    """Raise `HandshakeRefused` unless `head` (status line and headers, up to the blank line)
    switches to the WebSocket protocol for `key`."""
    lines = head.decode("latin1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HandshakeRefused(0, f"not an HTTP response: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    if status != 101:
        raise HandshakeRefused(status, "the server did not switch protocols")
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeRefused(status, "no 'Upgrade: websocket'")
    if "upgrade" not in [t.strip() for t in headers.get("connection", "").lower().split(",")]:
        raise HandshakeRefused(status, "no 'Connection: Upgrade'")
    if headers.get("sec-websocket-accept") != accept_key(key):
        raise HandshakeRefused(status, "wrong Sec-WebSocket-Accept")
    if headers.get("sec-websocket-extensions"):
        raise HandshakeRefused(status, "an extension we did not offer")


def _header(opcode: int, length: int) -> bytes:
    if length < 126:
        return bytes((_FIN | opcode, _MASK | length))
    if length < 1 << 16:
        return struct.pack("!BBH", _FIN | opcode, _MASK | 126, length)
    return struct.pack("!BBQ", _FIN | opcode, _MASK | 127, length)


def _xor(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    repeated = int.from_bytes((key * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(payload, "little") ^ repeated).to_bytes(n, "little")


def client_frame(opcode: int, payload: bytes, key: bytes | None = None) -> bytes:
    """One whole masked frame (FIN set) of `payload`; `key`: 4 bytes, random unless given."""
    key = os.urandom(4) if key is None else key
    return _header(opcode, len(payload)) + key + _xor(payload, key)


def client_frames(opcode: int, payloads: Sequence[bytes], keys: bytes | None = None) -> list[bytes]:
    """`client_frame(opcode, p)` for each payload, each with its own random key (or the 4
    bytes at its position in `keys`), the masking of equal-length runs done in one numpy pass."""
    keys = os.urandom(4 * len(payloads)) if keys is None else keys
    if len(keys) != 4 * len(payloads):
        raise ValueError("need 4 key bytes per payload")
    frames: list[bytes] = []
    i = 0
    while i < len(payloads):
        size = len(payloads[i])
        j = i
        while j < len(payloads) and len(payloads[j]) == size:
            j += 1
        count = j - i
        block_keys = np.frombuffer(keys[4 * i : 4 * j], np.uint8).reshape(count, 4)
        if size:
            data = np.frombuffer(b"".join(payloads[i:j]), np.uint8).reshape(count, size)
            mask = np.tile(block_keys, (1, size // 4 + 1))[:, :size]
            masked = data ^ mask
        header = _header(opcode, size)
        for k in range(count):
            body = masked[k].tobytes() if size else b""
            frames.append(header + block_keys[k].tobytes() + body)
        i = j
    return frames


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()[:123]


class ServerFrames:
    """The frames a server sends, parsed into whole messages (pure: `feed` bytes, get
    messages). Fragments are joined; control frames may come between them (5.4)."""

    def __init__(self, max_message: int = 1 << 24) -> None:
        self.max_message = max_message
        self._buffer = bytearray()
        self._op: int | None = None  # the fragmented message under way
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[Message]:
        buf = self._buffer
        buf += data
        out: list[Message] = []
        pos, n = 0, len(buf)
        try:
            while n - pos >= 2:
                b0, b1 = buf[pos], buf[pos + 1]
                if b1 & _MASK:
                    raise ProtocolViolation("a masked frame from the server")
                if b0 & 0x70:
                    raise ProtocolViolation("RSV bits set without an extension")
                length, head = b1 & 0x7F, 2
                if length == 126:
                    if n - pos < 4:
                        break
                    length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
                elif length == 127:
                    if n - pos < 10:
                        break
                    length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
                if length > self.max_message:
                    raise ProtocolViolation(f"a frame of {length} bytes")
                end = pos + head + length
                if end > n:
                    break
                payload = bytes(buf[pos + head : end])
                pos = end
                message = self._frame(b0 & _FIN, b0 & 0x0F, payload)
                if message is not None:
                    out.append(message)
        finally:
            del buf[:pos]
        return out

    def _frame(self, fin: int, opcode: int, payload: bytes) -> Message | None:
        if opcode in _CONTROL_OPS:
            if not fin or len(payload) > 125:
                raise ProtocolViolation("a fragmented or oversized control frame")
            return opcode, payload
        if opcode == OP_CONTINUATION:
            if self._op is None:
                raise ProtocolViolation("a continuation frame without a message to continue")
            self._size += len(payload)
            if self._size > self.max_message:
                raise ProtocolViolation(f"a message over {self.max_message} bytes")
            self._parts.append(payload)
            if not fin:
                return None
            whole = (self._op, b"".join(self._parts))
            self._op, self._parts, self._size = None, [], 0
            return whole
        if opcode not in _DATA_OPS:
            raise ProtocolViolation(f"unknown opcode {opcode:#x}")
        if self._op is not None:
            raise ProtocolViolation("a new message inside a fragmented one")
        if fin:
            return opcode, payload
        self._op, self._parts, self._size = opcode, [payload], len(payload)
        return None


class RawWebSocket:
    """One client connection over a non-blocking stdlib socket (`connect` opens it)."""

    def __init__(self, sock: socket.socket, leftover: bytes = b"") -> None:
        self.sock = sock
        self.frames = ServerFrames()
        self._pending = leftover  # bytes that came with the handshake response
        self._outbox = bytearray()
        self._waiting = trio.Event()  # set when the outbox has bytes the kernel did not take
        self.close_sent = False
        self.close_received: int | None = None  # the server's close code, once received
        self.pings_answered = 0
        self.broken: Exception | None = None  # a write failed: the connection is gone
        self.max_outbox = 4 << 20  # a server that stops reading makes us fail, not grow

    @classmethod
    async def connect(cls, host: str, port: int, path: str = "/ws") -> RawWebSocket:
        tsock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            await tsock.connect((host, port))
        except BaseException:
            tsock.close()
            raise
        sock = socket.socket(fileno=tsock.detach())
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            key = base64.b64encode(os.urandom(16))
            conn = cls(sock)
            conn.write(handshake_request(f"{host}:{port}", path, key))
            head = bytearray()
            while b"\r\n\r\n" not in head:
                if len(head) > MAX_HEAD:
                    raise HandshakeRefused(0, "handshake response too long")
                head += await conn._recv()
            end = head.index(b"\r\n\r\n")
            check_handshake_response(bytes(head[:end]), key)
            conn._pending = bytes(head[end + 4 :])
            return conn
        except BaseException:
            sock.close()
            raise

    def write(self, data: bytes) -> None:
        """Send `data` now, or as soon as the socket takes it, after everything written before
        (never blocks). Raises `ConnectionClosed` once a write failed."""
        if self.broken is not None:
            raise ConnectionClosed(repr(self.broken))
        if self._outbox:
            if len(self._outbox) > self.max_outbox:
                self.broken = ConnectionClosed("the server stopped reading")
                raise self.broken
            self._outbox += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.broken = exc
            raise ConnectionClosed(repr(exc)) from exc
        if sent < len(data):
            self._outbox += data[sent:]
            self._waiting.set()

    def send_text(self, text: str) -> None:
        self.write(client_frame(OP_TEXT, text.encode()))

    async def run_writer(self) -> None:
        """Flush what `write` could not send at once, in order, until cancelled."""
        while True:
            await self._waiting.wait()
            while self._outbox:
                await trio.lowlevel.wait_writable(self.sock)
                try:
                    sent = self.sock.send(self._outbox)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self.broken = exc
                    return
                del self._outbox[:sent]
            self._waiting = trio.Event()

    async def _recv(self) -> bytes:
        while True:
            try:
                data = self.sock.recv(262144)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.sock)
                continue
            except OSError as exc:
                raise ConnectionClosed(repr(exc)) from exc
            if not data:
                raise ConnectionClosed("the server closed the TCP connection")
            return data

    async def receive(self) -> list[Message]:
        """The next messages from the server (at least one), pings answered with pongs and a
        close answered with a close; `ConnectionClosed` after the close or at EOF."""
        while True:
            if self.close_received is not None:
                raise ConnectionClosed(f"closed by the server ({self.close_received})")
            data, self._pending = self._pending or await self._recv(), b""
            messages = self.frames.feed(data)
            for opcode, payload in messages:
                if opcode == OP_PING:
                    self._reply(OP_PONG, payload)
                    self.pings_answered += 1
                elif opcode == OP_CLOSE:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    self.close_received = code
                    if not self.close_sent:
                        self.close_sent = True
                        self._reply(OP_CLOSE, payload[:2])
            if messages:
                return messages

    def _reply(self, opcode: int, payload: bytes) -> None:
        try:
            self.write(client_frame(opcode, payload))
        except ConnectionClosed:
            pass  # the server is gone: the next receive sees it

    async def aclose(self, code: int = NORMAL_CLOSURE) -> None:
        """The closing handshake: send a close, read until the server's close or EOF, then
        close the socket (also when cancelled: the caller bounds the wait). Call with no other
        task using the connection."""
        try:
            if not self.close_sent and self.broken is None:
                self.close_sent = True
                self._reply(OP_CLOSE, close_payload(code))
            while self._outbox and self.broken is None:
                await trio.lowlevel.wait_writable(self.sock)
                try:
                    del self._outbox[: self.sock.send(self._outbox)]
                except BlockingIOError:
                    continue
                except OSError:
                    break
            while self.close_received is None:
                await self.receive()
        except (ConnectionClosed, ProtocolViolation):
            pass
        finally:
            self.broken = self.broken or ConnectionClosed("closed")
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()
