"""The demo web app: the browser page, voice sessions over `/ws`, SSE chat and monitoring.

Served by hypercorn's trio worker. `DemoServer` is the composition root: it picks the engines,
builds the quart-trio app and runs it. Every request first passes `AccessPolicy`
(access.py); every error is JSON (responses.py); the command is `bargein demo` (demo.py).

    GET  /                       the page (bargein/transports/static/)
    GET  /favicon.ico            204
    WS   /ws                     one voice session per connection (docs/protocol.md)
    POST /api/chat/stream        planner tokens as resumable SSE (docs/web.md)
    GET  /api/chat/stream        resume only (EventSource reconnects with Last-Event-ID)
    GET  /api/monitoring/stream  every session's events as SSE (monitoring.py; operator only)
    GET  /healthz                liveness and counters (no session ids)

What a session may choose (engine options, its interruption preset) is session_options.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart import Response, jsonify, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from bargein.engines.base import PlannerEngine
from bargein.runtime.bus import EventHub
from bargein.session import SessionConfig
from bargein.store import MemoryStore, Store
from bargein.transports.access import AccessConfig, AccessPolicy, Refusal, Tier, startup_warnings
from bargein.transports.chat import (
    ChatConfig,
    ChatRequestError,
    ChatService,
    ChatStream,
    RemoteStream,
    parse_chat_request,
    parse_json_body,
)
from bargein.transports.monitoring import monitor_stream
from bargein.transports.protocol import ErrorMessage, ServerProtocol, SessionStart
from bargein.transports.responses import (
    SECURITY_HEADERS,
    SSE_HEADERS,
    error_json,
    is_json_media_type,
    status_code,
)
from bargein.transports.session_options import (
    CLIENT_OPTIONS,
    POLICY_DESCRIPTIONS,
    embedded_engines_factory,
    policy_session_config,
)
from bargein.transports.websocket import (
    ConnectionLimits,
    EnginesFactory,
    SessionServer,
    WebSocketLike,
)
from bargein.transports.websocket.asgi import drain_after_close
from bargein.transports.websocket.endpoint import VoiceSocket, route_websocket

# `embedded_engines_factory` and `policy_session_config` live in session_options.py; callers
# import them from here too.
__all__ = [
    "GRACEFUL_TIMEOUT",
    "SESSIONS_END_TIMEOUT",
    "DemoServer",
    "embedded_engines_factory",
    "json_error",
    "main",
    "policy_session_config",
    "refuse_websocket",
    "sse_response",
]

log = logging.getLogger("bargein.transports")

STATIC_DIR = Path(__file__).with_name("static")
MAX_HTTP_BODY = 1024 * 1024
MAX_WS_MESSAGE = 1024 * 1024


def json_error(status: int, code: str, message: str) -> Response:
    """Every HTTP error: `{"error": {"code", "message"}}` (docs/web.md lists the codes)."""
    response = Response(json.dumps(error_json(code, message)), status=status)
    response.headers["Content-Type"] = "application/json"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="bargein"'
    return response


# The access tier of each endpoint (by quart endpoint name); anything else is PUBLIC.
TIERS = {"ws": Tier.USER, "chat_stream": Tier.USER, "monitoring_stream": Tier.OPERATOR}
# Sessions get this long to end after `shutting_down` before the monitoring streams get their
# final event; hypercorn then gives every connection GRACEFUL_TIMEOUT more, and a WebSocket's
# shielded close takes at most its ConnectionLimits.close_timeout (docs/web.md: the bound).
SESSIONS_END_TIMEOUT = 1.0
GRACEFUL_TIMEOUT = 1.0


class DemoServer:
    """The web app and the services behind it, for `bargein demo` and for tests."""

    def __init__(
        self,
        engines_factory: EnginesFactory | None = None,
        *,
        chat_planner: PlannerEngine | None = None,
        chat_config: ChatConfig | None = None,
        limits: ConnectionLimits | None = None,
        access: AccessConfig | None = None,
        max_sessions: int = 32,
        monitor_heartbeat: float = 15.0,
        session_config: Callable[[SessionStart, str], SessionConfig] | None = None,
        policy: str | None = None,
        store: Store | None = None,
    ) -> None:
        """`policy`: the preset of sessions whose start names none (`/ws`, telephony); None:
        SessionConfig's own settings. `session_config`, when given, replaces that mapping."""
        self.engines_factory = engines_factory or embedded_engines_factory()
        self.default_policy = policy
        self.access = access or AccessConfig()
        # Rebuilt by `serve` for the address it binds (the bind host is an allowed Host).
        self.policy = AccessPolicy(self.access, "127.0.0.1")
        self.hub = EventHub()
        # What this worker shares with the others (docs/deploy.md); in memory by default.
        self.store = store if store is not None else MemoryStore()
        self.hub.add_listener(self.store.publish_event)
        self.sessions = SessionServer(
            self.engines_factory,
            hub=self.hub,
            token=self.access.token,
            max_sessions=max_sessions,
            limits=limits,
            session_config=session_config or policy_session_config(policy),
            client_options=CLIENT_OPTIONS,
            policies=POLICY_DESCRIPTIONS,
            store=self.store,
        )
        planner = chat_planner or self.engines_factory({}).planner
        self.chat = ChatService(planner, chat_config, shared=self.store)
        self.monitor_heartbeat = monitor_heartbeat
        self.monitors = 0
        # Set once the sessions have ended (or had their time) during shutdown.
        self.stopping = trio.Event()
        self.app = self._build_app()

    # -- the app ------------------------------------------------------------------------------

    def _build_app(self) -> QuartTrio:
        app = QuartTrio(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
        app.config["MAX_CONTENT_LENGTH"] = MAX_HTTP_BODY
        # Streams last as long as they last; the planner's own timeouts bound model work.
        app.config["RESPONSE_TIMEOUT"] = None
        # hypercorn can leave a WebSocket's socket open for ever unless its event queue is
        # detached once the handler returned (bargein/transports/websocket/asgi.py).
        # `/ws` WebSockets skip quart (websocket/endpoint.py): the session reads hypercorn's
        # events itself, one hop per frame instead of three.
        routed = route_websocket("/ws", self._voice_socket, app.asgi_app)
        app.asgi_app = drain_after_close(routed)  # type: ignore[method-assign,assignment]

        @app.before_serving
        async def start_services() -> None:
            await app.nursery.start(self.chat.run)

        @app.after_serving
        async def stop_services() -> None:
            self.chat.stop()

        @app.before_request
        async def guard() -> Response | None:
            decision = self.policy.http(
                TIERS.get(request.endpoint or "", Tier.PUBLIC),
                host=request.headers.get("Host"),
                origin=request.headers.get("Origin"),
                authorization=request.headers.get("Authorization"),
            )
            if isinstance(decision, Refusal):
                return json_error(decision.status, decision.code, decision.message)
            return None

        @app.after_request
        async def secure(response: Response) -> Response:
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        @app.errorhandler(HTTPException)
        async def http_error(error: HTTPException) -> Response:
            status = error.code or 500
            response = json_error(status, status_code(status), str(error.description or ""))
            if isinstance(error, MethodNotAllowed) and error.valid_methods:
                response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
            return response

        @app.get("/")
        async def index() -> Response:
            response = await app.send_static_file("index.html")
            response.headers["Cache-Control"] = "no-cache"
            return response

        @app.get("/favicon.ico")
        async def favicon() -> Response:
            # No icon of our own (the page may link one); 204 keeps browsers from logging a 404.
            return Response(b"", status=204, headers={"Cache-Control": "max-age=86400"})

        @app.get("/healthz")
        async def healthz() -> Response:
            # Public: counts only, never session ids or anything a session said.
            return jsonify(
                {
                    "status": "stopping" if self.sessions.shutting_down.is_set() else "ok",
                    "sessions": len(self.sessions.sessions),
                    "server": self.sessions.stats.to_json(),
                    "chat_streams": len(self.chat.store),
                    "monitors": self.monitors,
                    "store": self.store.health.to_json(),
                    "access": {"refused": dict(self.policy.refused)},
                }
            )

        @app.websocket("/ws")
        async def ws() -> None:
            # Only reached by what `route_websocket` (above) does not take; a plain HTTP GET
            # /ws still gets quart's 400. The proxy's target: kept across awaits and tasks.
            await self._voice_socket(websocket._get_current_object())  # type: ignore[attr-defined]

        @app.route("/api/chat/stream", methods=["POST", "GET"])
        async def chat_stream() -> Response:
            try:
                stream, after = await self._open_chat()
            except ChatRequestError as error:
                return json_error(error.status, error.code, error.message)
            response = sse_response(self.chat.follow(stream, after))
            response.headers["X-Stream-Id"] = stream.stream_id
            return response

        @app.get("/api/monitoring/stream")
        async def monitoring_stream() -> Response:
            return sse_response(self._monitor())

        from bargein.transports.telephony import add_telephony_routes  # /twilio, /telnyx

        telephony = add_telephony_routes(app, self)
        from bargein.transports.realtime import add_realtime_routes  # /v1/realtime (OpenAI)

        self.realtime = add_realtime_routes(app, self)
        # One pool: `max_sessions` caps /ws sessions, calls and /v1/realtime connections together.
        sessions, realtime = self.sessions, self.realtime
        sessions.others_running = lambda: len(telephony.calls) + realtime.active
        realtime.others_running = lambda: len(sessions.sessions) + len(telephony.calls)
        telephony.others_running = lambda: len(sessions.sessions) + realtime.active
        return app

    async def _voice_socket(self, socket: VoiceSocket) -> None:
        """One `/ws` connection: the access check (a refusal is told and closed), then a
        session (docs/protocol.md)."""
        decision = self.policy.websocket(
            host=socket.headers.get("Host"),
            origin=socket.headers.get("Origin"),
            authorization=socket.headers.get("Authorization"),
            subprotocols=socket.requested_subprotocols,
        )
        if isinstance(decision, Refusal):
            await refuse_websocket(socket, decision)
            return
        await socket.accept(subprotocol=decision.subprotocol)
        await self.sessions.handle(socket, authorized=decision.authorized)

    async def _open_chat(self) -> tuple[ChatStream | RemoteStream, int]:
        last_event_id = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        if last_event_id:
            return await self.chat.resume(last_event_id)
        if request.method == "GET":
            raise ChatRequestError(
                400, "missing_last_event_id", "GET only resumes a stream: send Last-Event-ID"
            )
        # Only `application/json`: a cross-site form or `text/plain` fetch cannot send it
        # without a CORS preflight, which this server never grants (CSRF).
        if not is_json_media_type(request.headers.get("Content-Type")):
            raise ChatRequestError(
                415, "unsupported_media_type", "the body must be Content-Type: application/json"
            )
        data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        body = parse_json_body(data)  # reading raises 413 beyond MAX_HTTP_BODY
        return self.chat.open(parse_chat_request(body)), 0

    async def _monitor(self) -> AsyncIterator[bytes]:
        self.monitors += 1
        try:
            async for chunk in monitor_stream(
                self.hub,
                lambda: sorted(self.sessions.sessions),
                self.stopping,
                heartbeat=self.monitor_heartbeat,
                store=self.store,
            ):
                yield chunk
        finally:
            self.monitors -= 1

    # -- serving ------------------------------------------------------------------------------

    def hypercorn_config(self, host: str, port: int) -> HypercornConfig:
        config = HypercornConfig()
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        config.websocket_max_message_size = MAX_WS_MESSAGE
        config.graceful_timeout = GRACEFUL_TIMEOUT
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
        the bound URLs (with the real port when `port` is 0). Raises `ValueError` for an access
        configuration that would expose the monitoring stream."""
        self.policy = AccessPolicy(self.access, host)
        for warning in startup_warnings(host, self.access):
            log.warning("%s", warning)

        async def trigger() -> None:
            if shutdown_trigger is None:
                await trio.sleep_forever()
            else:
                await shutdown_trigger()
            await self.stop()

        async with trio.open_nursery() as nursery:
            # The store first: a Redis that cannot be reached fails the start (StoreUnavailable).
            await nursery.start(self.store.run)
            await hypercorn_serve(
                self.app,
                self.hypercorn_config(host, port),
                shutdown_trigger=trigger,
                task_status=task_status,
            )
            nursery.cancel_scope.cancel()

    async def stop(self) -> None:
        """Sessions get a fatal `shutting_down` and end, chat streams end with an `error` event;
        once the sessions ended (at most SESSIONS_END_TIMEOUT) the monitors end likewise."""
        self.sessions.shutdown()
        self.chat.stop()
        with trio.move_on_after(SESSIONS_END_TIMEOUT):
            await self.sessions.wait_idle()
        self.stopping.set()


def sse_response(body: AsyncIterator[bytes]) -> Response:
    response = Response(body, status=200, headers=SSE_HEADERS)
    response.timeout = None
    return response


async def refuse_websocket(socket: WebSocketLike, refusal: Refusal) -> None:
    """Accept, say why in a fatal `error` frame, close 1008 with the code as the reason: a
    browser sees the reason, which a refused HTTP upgrade would hide from it."""
    await socket.accept()
    frame = ServerProtocol().send(ErrorMessage(refusal.code, refusal.message, fatal=True))
    with trio.move_on_after(2.0):
        try:
            await socket.send(frame)
            await socket.close(1008, refusal.code)
        except Exception as exc:  # the peer left already
            log.debug("websocket refusal not delivered: %r", exc)


def main(argv: list[str]) -> int:
    """`bargein demo` (bargein/transports/demo.py)."""
    from bargein.transports.demo import main as demo_main

    return demo_main(argv)
