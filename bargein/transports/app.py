"""The demo web app: the browser page, voice sessions over `/ws`, SSE chat and monitoring.

Served by hypercorn's trio worker. `DemoServer` is the composition root: it picks the engines,
builds the quart-trio app and runs it; `main` is `bargein demo`.

    GET  /                       the page (bargein/transports/static/)
    WS   /ws                     one voice session per connection (docs/protocol.md)
    POST /api/chat/stream        planner tokens as resumable SSE (docs/web.md)
    GET  /api/chat/stream        resume only (EventSource reconnects with Last-Event-ID)
    GET  /api/monitoring/stream  every session's events as SSE
    GET  /healthz                liveness and counters
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart import Response, jsonify, request, websocket
from quart_trio import QuartTrio

from bargein.dsp import warm_up
from bargein.engines.base import Engines, PlannerEngine
from bargein.runtime.bus import EventHub
from bargein.session import SessionConfig
from bargein.transports.chat import ChatConfig, ChatRequestError, ChatService, parse_chat_request
from bargein.transports.protocol import OptionValue, SessionStart
from bargein.transports.sse import encode_comment, encode_event, encode_retry, format_event_id
from bargein.transports.websocket import (
    ConnectionLimits,
    EnginesFactory,
    SessionServer,
    default_session_config,
)

log = logging.getLogger("bargein.transports")

STATIC_DIR = Path(__file__).with_name("static")
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    # No proxy or CDN may cache or buffer a stream; nginx honours X-Accel-Buffering.
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
MAX_HTTP_BODY = 1024 * 1024
MAX_WS_MESSAGE = 1024 * 1024
# Engine options a browser may choose (docs/web.md); everything else in `options` is ignored.
CLIENT_ENGINE_OPTIONS = frozenset({"voice", "rate_wpm", "pitch"})


def embedded_engines_factory(
    planner: Callable[[], PlannerEngine] | None = None,
) -> EnginesFactory:
    """Engines per session from `bargein.engines.embedded`, with an optional other planner."""

    def make(options: Mapping[str, OptionValue]) -> Engines:
        from bargein.engines.embedded import default_engines

        chosen = {k: v for k, v in options.items() if k in CLIENT_ENGINE_OPTIONS}
        engines = default_engines(**chosen)
        if planner is not None:
            engines = dataclasses.replace(engines, planner=planner())
        return engines

    return make


def openai_planner(base_url: str, model: str | None, api_key: str | None) -> PlannerEngine:
    from bargein.engines.openai_compat import OpenAIPlanner

    kwargs: dict[str, Any] = {"base_url": base_url, "api_key": api_key or "unused"}
    if model:
        kwargs["model"] = model
    return OpenAIPlanner(**kwargs)


_POLICY_MODES: dict[str, Literal["onset", "confirm"]] = {"onset": "onset", "confirm": "confirm"}


def session_config_with_policy(start: SessionStart, session_id: str) -> SessionConfig:
    """The default session config, with the client's `policy` option if it names one."""
    config = default_session_config(start, session_id)
    mode = _POLICY_MODES.get(str(start.options.get("policy")))
    if mode is not None:
        config = dataclasses.replace(config, policy=dataclasses.replace(config.policy, mode=mode))
    return config


class DemoServer:
    """The web app and the services behind it, for `bargein demo` and for tests."""

    def __init__(
        self,
        engines_factory: EnginesFactory | None = None,
        *,
        chat_planner: PlannerEngine | None = None,
        chat_config: ChatConfig | None = None,
        limits: ConnectionLimits | None = None,
        token: str | None = None,
        max_sessions: int = 32,
        monitor_heartbeat: float = 15.0,
        session_config: Callable[[SessionStart, str], SessionConfig] = session_config_with_policy,
    ) -> None:
        self.engines_factory = engines_factory or embedded_engines_factory()
        self.hub = EventHub()
        self.sessions = SessionServer(
            self.engines_factory,
            hub=self.hub,
            token=token,
            max_sessions=max_sessions,
            limits=limits,
            session_config=session_config,
        )
        planner = chat_planner or self.engines_factory({}).planner
        self.chat = ChatService(planner, chat_config)
        self.monitor_heartbeat = monitor_heartbeat
        self.monitors = 0
        self.app = self._build_app()

    # -- the app ------------------------------------------------------------------------------

    def _build_app(self) -> QuartTrio:
        app = QuartTrio(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
        app.config["MAX_CONTENT_LENGTH"] = MAX_HTTP_BODY
        # Streams last as long as they last; the planner's own timeouts bound model work.
        app.config["RESPONSE_TIMEOUT"] = None

        @app.before_serving
        async def start_services() -> None:
            await app.nursery.start(self.chat.run)

        @app.after_serving
        async def stop_services() -> None:
            self.chat.stop()

        @app.get("/")
        async def index() -> Response:
            response = await app.send_static_file("index.html")
            response.headers["Cache-Control"] = "no-cache"
            return response

        @app.get("/healthz")
        async def healthz() -> Response:
            return jsonify(
                {
                    "status": "stopping" if self.sessions.shutting_down.is_set() else "ok",
                    "sessions": sorted(self.sessions.sessions),
                    "server": self.sessions.stats.to_json(),
                    "chat_streams": len(self.chat.store),
                    "monitors": self.monitors,
                }
            )

        @app.websocket("/ws")
        async def ws() -> None:
            # The proxy's target: the handler keeps it across awaits and other tasks.
            await self.sessions.handle(websocket._get_current_object())  # type: ignore[attr-defined]

        @app.route("/api/chat/stream", methods=["POST", "GET"])
        async def chat_stream() -> Response | tuple[Response, int]:
            last_event_id = request.headers.get("Last-Event-ID") or request.args.get(
                "last_event_id"
            )
            try:
                if last_event_id:
                    stream, after = self.chat.resume(last_event_id)
                elif request.method == "GET":
                    raise ChatRequestError(
                        405, "method_not_allowed", "GET only resumes (send Last-Event-ID)"
                    )
                else:
                    body = await request.get_json(force=True, silent=True)
                    if body is None:
                        raise ChatRequestError(400, "bad_json", "the body must be JSON")
                    stream, after = self.chat.open(parse_chat_request(body)), 0
            except ChatRequestError as error:
                return jsonify(error.to_json()), error.status
            response = Response(self.chat.follow(stream, after), status=200, headers=SSE_HEADERS)
            response.headers["X-Stream-Id"] = stream.stream_id
            response.timeout = None
            return response

        @app.get("/api/monitoring/stream")
        async def monitoring_stream() -> Response:
            response = Response(self._monitor(), status=200, headers=SSE_HEADERS)
            response.timeout = None
            return response

        return app

    async def _monitor(self) -> AsyncIterator[bytes]:
        """Every session's events as they happen. A live view: no replay; a monitor that falls
        behind loses the oldest events and is told how many (`dropped`)."""
        self.monitors += 1
        try:
            with self.hub.subscribe(4096) as events:
                yield encode_retry(2000)
                hello = {"sessions": sorted(self.sessions.sessions)}
                yield encode_event(json.dumps(hello), event="hello")
                reported = 0
                while True:
                    with trio.move_on_after(self.monitor_heartbeat) as quiet:
                        event = await events.get()
                    if quiet.cancelled_caught:
                        yield encode_comment("ping")
                        continue
                    if events.dropped > reported:
                        dropped = {"dropped": events.dropped - reported}
                        reported = events.dropped
                        yield encode_event(json.dumps(dropped), event="dropped")
                    data = json.dumps(event.to_json(), default=str, ensure_ascii=False)
                    yield encode_event(
                        data, event=event.type.value, id=format_event_id(event.session, event.seq)
                    )
        finally:
            self.monitors -= 1

    # -- serving ------------------------------------------------------------------------------

    def hypercorn_config(self, host: str, port: int) -> HypercornConfig:
        config = HypercornConfig()
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        config.websocket_max_message_size = MAX_WS_MESSAGE
        config.graceful_timeout = 3.0
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        return config

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until `shutdown_trigger` returns (or cancellation); `task_status.started` gets
        the bound URLs (with the real port when `port` is 0)."""

        async def trigger() -> None:
            if shutdown_trigger is None:
                await trio.sleep_forever()
            else:
                await shutdown_trigger()
            # Sessions get a `shutting_down` error and end; chat streams end with an error event.
            self.sessions.shutdown()
            self.chat.stop()

        await hypercorn_serve(
            self.app,
            self.hypercorn_config(host, port),
            shutdown_trigger=trigger,
            task_status=task_status,
        )


async def _until_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="bargein demo", description="Serve the browser demo: talk to it, interrupt it."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--llm-base-url", help="an OpenAI-compatible endpoint for the planner")
    parser.add_argument("--llm-model", help="model name at --llm-base-url")
    parser.add_argument(
        "--llm-api-key", default=os.environ.get("OPENAI_API_KEY"), help="(default $OPENAI_API_KEY)"
    )
    parser.add_argument("--token", help="require this token in session.start")
    parser.add_argument("--max-sessions", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    planner_factory: Callable[[], PlannerEngine] | None = None
    if args.llm_base_url:
        base_url, model, key = args.llm_base_url, args.llm_model, args.llm_api_key

        def planner_factory() -> PlannerEngine:
            return openai_planner(base_url, model, key)

    server = DemoServer(
        embedded_engines_factory(planner_factory), token=args.token, max_sessions=args.max_sessions
    )
    warm_up()  # compile/load the DSP kernels now, not inside the first caller's audio

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                lambda task_status: server.serve(
                    args.host, args.port, shutdown_trigger=_until_signal, task_status=task_status
                )
            )
            print(f"bargein demo: open {urls[0]}/ (Ctrl+C to stop)", file=sys.stderr, flush=True)

    try:
        trio.run(run)
    except OSError as exc:
        print(f"bargein demo: {exc}", file=sys.stderr)
        return 1
    return 0
