"""A real, local OpenAI-compatible HTTP server for tests, benchmarks and the demo.

It speaks HTTP/1.1 with h11 on trio sockets rather than through a web framework, because tests
need what frameworks hide: the exact moment the client closes a stream, abrupt connection drops,
stalls at chosen points, and every request body as received.

    server = await nursery.start(serve_openai, ServerConfig(chat=["Hello there."]))
    client = openai.AsyncOpenAI(base_url=server.url, api_key="test")

Endpoints: ``POST /v1/chat/completions`` (SSE streaming exactly as OpenAI frames it, tool-call
deltas, usage, ``[DONE]``; or a plain JSON completion), ``POST /v1/audio/transcriptions``
(multipart), ``POST /v1/audio/speech`` (streamed PCM16 24 kHz mono), ``GET /v1/models``.

Standalone, for the demo: ``python -m bargein.testing.openai_server --port 8001 [--script FILE]``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import h11
import numpy as np
import trio

Fault = Literal[
    "drop_before_headers",  # close the connection without any response
    "stall_before_headers",  # accept the request, never answer
    "stall_before_first_token",  # send headers and the role chunk, then nothing
    "stall_after_first_token",  # stall after `fault_after_tokens` tokens
    "drop_mid_stream",  # close the connection after `fault_after_tokens` tokens
]

SPEECH_RATE = 24_000


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the scripted model makes; `arguments` is sent as its JSON text."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)

    def call_id(self, request: int, position: int) -> str:
        return self.id or f"call_{request}_{position}"


@dataclass(frozen=True, slots=True)
class ChatReply:
    """One scripted response to a chat completion request.

    Text streams first (one token per word), then tool calls (name, then arguments in pieces).
    `status` other than 200 answers with an OpenAI-style error body instead.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    tool_call_delay: float = 0.0  # pause between the text and the tool-call deltas
    status: int = 200
    fault: Fault | None = None
    fault_after_tokens: int = 1
    usage: bool = True  # send the usage chunk when the client asks for it (stream_options)


ChatScript = Sequence["ChatReply | str"] | Callable[["RecordedRequest"], "ChatReply | str"]
TextScript = Sequence[str] | Callable[["RecordedRequest"], str]


@dataclass(slots=True)
class ServerConfig:
    # Replies to chat requests in order (or a function of the request); when a list runs out,
    # `default_chat` answers, or, if None, an echo of the last user message.
    chat: ChatScript = ()
    default_chat: ChatReply | None = None
    default_token_delay: float = 0.0  # for echo replies
    transcripts: TextScript = ()
    default_transcript: str = ""
    transcription_status: int = 200
    speech_status: int = 200
    speech_seconds_per_char: float = 1 / 14  # audio length proportional to the text
    speech_chunk_bytes: int = 4800  # 100 ms of PCM16 at 24 kHz; odd values test re-framing
    speech_first_chunk_delay: float = 0.0
    speech_chunk_delay: float = 0.0
    model: str = "bargein-local"


@dataclass(slots=True)
class RecordedRequest:
    """A request as the server received it, and what became of its response."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # trio time the whole request had arrived
    first_token_at: float | None = None
    tokens_sent: int = 0
    completed_at: float | None = None  # response fully sent
    closed_at: float | None = None  # client closed the connection before the response ended
    form: dict[str, str | bytes] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        body = self.json
        return list(body.get("messages", [])) if isinstance(body, dict) else []


class _Dropped(Exception):
    """Raised by a handler to close the connection abruptly (fault injection)."""


class OpenAIServer:
    """State of a running server: the scripts, and everything it observed."""

    def __init__(self, config: ServerConfig, host: str, port: int) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        # Request index -> trio time the server saw the client close while that response was
        # still in flight (EOF or reset on the socket).
        self.open_connections = 0
        self._changed = trio.Event()
        self._chat_next = 0
        self._transcript_next = 0

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client (ends in /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    async def wait_requests(self, count: int, path_suffix: str = "") -> RecordedRequest:
        """Wait until `count` requests (to paths ending in `path_suffix`) have arrived."""
        while True:
            matching = [r for r in self.requests if r.path.endswith(path_suffix)]
            if len(matching) >= count:
                return matching[count - 1]
            await self._changed.wait()

    async def wait_closed(self, index: int) -> float:
        """Wait until the client has closed request `index`'s stream; return when it did."""
        while index >= len(self.requests) or self.requests[index].closed_at is None:
            await self._changed.wait()
        closed_at = self.requests[index].closed_at
        assert closed_at is not None
        return closed_at

    async def wait_idle(self) -> None:
        """Wait until no client connection is open."""
        while self.open_connections:
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- scripts -----------------------------------------------------------------------------

    def _next_chat(self, request: RecordedRequest) -> ChatReply:
        script = self.config.chat
        reply: ChatReply | str
        if callable(script):
            reply = script(request)
        elif self._chat_next < len(script):
            reply = script[self._chat_next]
            self._chat_next += 1
        elif self.config.default_chat is not None:
            reply = self.config.default_chat
        else:
            reply = ChatReply(_echo(request), token_delay=self.config.default_token_delay)
        return ChatReply(reply) if isinstance(reply, str) else reply

    def _next_transcript(self, request: RecordedRequest) -> str:
        script = self.config.transcripts
        if callable(script):
            return script(request)
        if self._transcript_next < len(script):
            self._transcript_next += 1
            return script[self._transcript_next - 1]
        return self.config.default_transcript

    # -- connections -------------------------------------------------------------------------

    async def handle_connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        self.open_connections += 1
        self._notify()
        try:
            while True:
                request = await self._read_request(stream, conn)
                if request is None:
                    return
                if not await self._respond(stream, conn, request):
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            self.open_connections -= 1
            self._notify()
            await trio.aclose_forcefully(stream)

    async def _read_request(
        self, stream: trio.SocketStream, conn: h11.Connection
    ) -> RecordedRequest | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                headers = {k.decode().lower(): v.decode() for k, v in head.headers}
                record = RecordedRequest(
                    index=len(self.requests),
                    method=head.method.decode(),
                    path=head.target.decode().split("?", 1)[0],
                    headers=headers,
                    body=bytes(body),
                    received_at=trio.current_time(),
                )
                self.requests.append(record)
                self._notify()
                return record
            else:  # ConnectionClosed, or anything unexpected between requests
                return None

    async def _respond(
        self, stream: trio.SocketStream, conn: h11.Connection, request: RecordedRequest
    ) -> bool:
        """Answer one request while watching the socket; False if the connection must end."""
        response_scope = trio.CancelScope()
        peer_closed = False

        async def watch_peer() -> None:
            # The client sends nothing while it waits for a response (no pipelining), so a read
            # that returns is EOF or a reset: the client closed the stream. Bytes of a next
            # request, if any, are handed to h11 for the next cycle.
            nonlocal peer_closed
            try:
                while data := await stream.receive_some(65536):
                    conn.receive_data(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            peer_closed = True
            self._peer_closed(request)
            response_scope.cancel()

        async def send(event: h11.Event) -> None:
            data = conn.send(event)
            if data:
                try:
                    await stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._peer_closed(request)
                    raise

        dropped = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_peer)
            with response_scope:
                try:
                    await self._dispatch(request, send)
                    request.completed_at = trio.current_time()
                    self._notify()
                except _Dropped:
                    dropped = True
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    dropped = True
            nursery.cancel_scope.cancel()
        return not (dropped or peer_closed)

    def _peer_closed(self, request: RecordedRequest) -> None:
        if request.completed_at is None and request.closed_at is None:
            request.closed_at = trio.current_time()
            self._notify()

    # -- endpoints ---------------------------------------------------------------------------

    async def _dispatch(self, request: RecordedRequest, send: _Send) -> None:
        path = request.path.removeprefix("/v1")
        if request.method == "POST" and path == "/chat/completions":
            await self._chat(request, send)
        elif request.method == "POST" and path == "/audio/transcriptions":
            await self._transcription(request, send)
        elif request.method == "POST" and path == "/audio/speech":
            await self._speech(request, send)
        elif request.method == "GET" and path == "/models":
            body = {"object": "list", "data": [_model_entry(self.config.model)]}
            await _send_json(send, 200, body)
        else:
            await _send_error(send, 404, f"no route for {request.method} {request.path}")

    async def _chat(self, request: RecordedRequest, send: _Send) -> None:
        body = _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            await _send_error(send, 400, "body must be JSON with a 'messages' list")
            return
        reply = self._next_chat(request)
        if reply.fault == "drop_before_headers":
            raise _Dropped
        if reply.fault == "stall_before_headers":
            await trio.sleep_forever()
        if reply.status != 200:
            await _send_error(send, reply.status, f"scripted failure (HTTP {reply.status})")
            return
        model = str(body.get("model") or self.config.model)
        if not body.get("stream"):
            await _send_json(send, 200, _completion(request.index, model, reply))
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        await _ChatStream(self, request, reply, model, send).run(include_usage and reply.usage)

    async def _transcription(self, request: RecordedRequest, send: _Send) -> None:
        request.form = _parse_multipart(request.headers.get("content-type", ""), request.body)
        if self.config.transcription_status != 200:
            await _send_error(send, self.config.transcription_status, "scripted failure")
            return
        if not isinstance(request.form.get("file"), bytes):
            await _send_error(send, 400, "multipart field 'file' is required")
            return
        await _send_json(send, 200, {"text": self._next_transcript(request)})

    async def _speech(self, request: RecordedRequest, send: _Send) -> None:
        body = _json_body(request) if request.body else {}
        if self.config.speech_status != 200:
            await _send_error(send, self.config.speech_status, "scripted failure")
            return
        if not isinstance(body, dict) or not isinstance(body.get("input"), str):
            await _send_error(send, 400, "body must be JSON with an 'input' string")
            return
        if body.get("response_format", "mp3") != "pcm":
            await _send_error(send, 400, "this server only produces response_format='pcm'")
            return
        pcm = _speech_pcm(body["input"], self.config.speech_seconds_per_char).tobytes()
        await send(
            h11.Response(
                status_code=200,
                headers=[("content-type", "audio/pcm"), ("transfer-encoding", "chunked")],
            )
        )
        config = self.config
        step = max(1, config.speech_chunk_bytes)
        for i, offset in enumerate(range(0, len(pcm), step)):
            delay = config.speech_first_chunk_delay if i == 0 else config.speech_chunk_delay
            await trio.sleep(delay)
            await send(h11.Data(data=pcm[offset : offset + step]))
        await send(h11.EndOfMessage())


_Send = Callable[[h11.Event], Any]


class _ChatStream:
    """One streamed chat completion, framed as OpenAI frames it."""

    def __init__(
        self,
        server: OpenAIServer,
        request: RecordedRequest,
        reply: ChatReply,
        model: str,
        send: _Send,
    ) -> None:
        self.server = server
        self.request = request
        self.reply = reply
        self.model = model
        self.send = send
        self.id = _completion_id(request.index)
        self.created = _created(request.index)

    def _frame(self, payload: dict[str, Any]) -> h11.Data:
        return h11.Data(data=b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> h11.Data:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._frame(self._envelope([choice]))

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_bargein_local",
            "choices": choices,
        }

    async def _token(self, delta: dict[str, Any], delay: float) -> None:
        reply = self.reply
        await trio.sleep(delay)
        await self.send(self._chunk(delta))
        request = self.request
        if request.first_token_at is None:
            request.first_token_at = trio.current_time()
        request.tokens_sent += 1
        self.server._notify()
        if request.tokens_sent == reply.fault_after_tokens:
            await self._fault()

    async def _fault(self) -> None:
        if self.reply.fault == "stall_after_first_token":
            await trio.sleep_forever()
        if self.reply.fault == "drop_mid_stream":
            raise _Dropped

    async def run(self, include_usage: bool) -> None:
        reply = self.reply
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("transfer-encoding", "chunked"),
        ]
        await self.send(h11.Response(status_code=200, headers=headers))
        await self.send(self._chunk({"role": "assistant", "content": ""}))
        if reply.fault == "stall_before_first_token":
            await trio.sleep_forever()
        tokens = _tokens(reply.text)
        for i, token in enumerate(tokens):
            delay = reply.first_token_delay if i == 0 else reply.token_delay
            await self._token({"content": token}, delay)
        for i, call in enumerate(reply.tool_calls):
            delay = reply.tool_call_delay if i == 0 else reply.token_delay
            if not tokens and i == 0:
                delay += reply.first_token_delay
            args = call.arguments_json()
            head = {
                "index": i,
                "id": call.call_id(self.request.index, i),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            await self._token({"tool_calls": [head]}, delay)
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                if piece:
                    part = {"index": i, "function": {"arguments": piece}}
                    await self._token({"tool_calls": [part]}, reply.token_delay)
        if reply.fault in ("stall_after_first_token", "drop_mid_stream"):
            await self._fault()  # fewer tokens than fault_after_tokens: fault at the end
        finish = "tool_calls" if reply.tool_calls else "stop"
        await self.send(self._chunk({}, finish))
        if include_usage:
            prompt = sum(len(str(m.get("content") or "").split()) for m in self.request.messages)
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": self.request.tokens_sent,
                "total_tokens": prompt + self.request.tokens_sent,
            }
            await self.send(self._frame({**self._envelope([]), "usage": usage}))
        await self.send(h11.Data(data=b"data: [DONE]\n\n"))
        await self.send(h11.EndOfMessage())


# -- helpers ---------------------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    """Word-sized tokens that keep their leading spaces, as BPE tokens usually do."""
    return re.findall(r"\s*\S+", text) or ([text] if text else [])


def _echo(request: RecordedRequest) -> str:
    users = [m for m in request.messages if m.get("role") == "user"]
    said = str(users[-1].get("content") or "").strip() if users else ""
    return f"You said: {said}" if said else "Hello. I am a local test server."


def _model_entry(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "bargein"}



def _json_body(request: RecordedRequest) -> Any:
    """The request's JSON body, or None if it is not JSON (the caller answers 400)."""
    try:
        return request.json
    except ValueError:
        return None


def _completion_id(index: int) -> str:
    return f"chatcmpl-local-{index}"


def _created(index: int) -> int:
    return 1_700_000_000 + index


def _completion(index: int, model: str, reply: ChatReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id(index, i),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for i, call in enumerate(reply.tool_calls)
        ]
    finish = "tool_calls" if reply.tool_calls else "stop"
    return {
        "id": _completion_id(index),
        "object": "chat.completion",
        "created": _created(index),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


async def _send_json(send: _Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
    await send(h11.Response(status_code=status, headers=headers))
    await send(h11.Data(data=data))
    await send(h11.EndOfMessage())


async def _send_error(send: _Send, status: int, message: str) -> None:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    error = {"message": message, "type": kind, "param": None, "code": None}
    await _send_json(send, status, {"error": error})


def _parse_multipart(content_type: str, body: bytes) -> dict[str, str | bytes]:
    """Fields of a multipart/form-data body: files as bytes, other fields as text."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return {}
    fields: dict[str, str | bytes] = {}
    for part in body.split(b"--" + match.group(1).encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'name="([^"]*)"', disposition)
        if name is None:
            continue
        is_file = "filename=" in disposition
        fields[name.group(1)] = content if is_file else content.decode("utf-8", "replace")
    return fields


def _speech_pcm(text: str, seconds_per_char: float) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A voiced-sounding tone, one syllable-like burst per word, as long as the text 'takes'."""
    n = max(1, int(len(text) * seconds_per_char * SPEECH_RATE))
    t = np.arange(n) / SPEECH_RATE
    envelope = 0.55 + 0.45 * np.sin(2 * math.pi * 3.5 * t)
    signal = 0.25 * envelope * np.sin(2 * math.pi * 180.0 * t)
    return (signal * 32767).astype("<i2")


def _reply_from_json(item: Any) -> ChatReply | str:
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        raise ValueError(f"a chat script item must be a string or an object, not {item!r}")
    calls = tuple(ToolCall(**call) for call in item.get("tool_calls", ()))
    return ChatReply(**{**item, "tool_calls": calls})


def load_script(path: str) -> ServerConfig:
    """A config from a JSON file: ``{"chat": [...], "transcripts": [...], ...}``.

    Chat items are strings or objects with ChatReply's fields (tool_calls as objects with
    name/arguments/id). Other keys are ServerConfig fields (e.g. "default_token_delay").
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError("the script must be a JSON object")
    chat = [_reply_from_json(item) for item in data.pop("chat", [])]
    transcripts = [str(t) for t in data.pop("transcripts", [])]
    return ServerConfig(chat=chat, transcripts=transcripts, **data)


async def serve_openai(
    config: ServerConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[OpenAIServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; `await nursery.start(serve_openai, config)` returns the server.

    `nursery.start` passes positional arguments only: `nursery.start(serve_openai, config,
    "127.0.0.1", 8001)`. Port 0 (the default) binds a free port; read it from `server.port`.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound_port = listeners[0].socket.getsockname()[1]
    server = OpenAIServer(config or ServerConfig(), host, bound_port)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.handle_connection, listeners)
        task_status.started(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bargein.testing.openai_server",
        description="A local OpenAI-compatible server with scripted replies (tests and demo).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--script", help="JSON file of scripted replies (default: echo)")
    parser.add_argument(
        "--token-delay", type=float, default=0.03, help="seconds between echo tokens"
    )
    args = parser.parse_args(argv)
    config = load_script(args.script) if args.script else ServerConfig()
    if not args.script:
        config.default_token_delay = args.token_delay

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_openai, config, args.host, args.port)
            print(f"OpenAI-compatible server on {server.url}", flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
