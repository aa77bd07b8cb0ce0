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
import sys

import h11
import trio

from bargein.testing.openai_script import (
    ChatReply,
    ChatScript,
    Fault,
    RecordedRequest,
    ServerConfig,
    TextScript,
    ToolCall,
    _echo,
    load_script,
)
from bargein.testing.openai_wire import (
    SPEECH_RATE,
    _ChatStream,
    _completion,
    _Dropped,
    _json_body,
    _model_entry,
    _parse_multipart,
    _Send,
    _send_error,
    _send_json,
    _speech_pcm,
)

__all__ = [
    "SPEECH_RATE",
    "ChatReply",
    "ChatScript",
    "Fault",
    "OpenAIServer",
    "RecordedRequest",
    "ServerConfig",
    "TextScript",
    "ToolCall",
    "_speech_pcm",
    "load_script",
    "main",
    "serve_openai",
]


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
        await _ChatStream(self._notify, request, reply, model, send).run(
            include_usage and reply.usage
        )

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
