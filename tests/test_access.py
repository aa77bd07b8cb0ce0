"""Access control and HTTP exactness of the demo server (docs/web.md, "Access").

The pure policy first, then every endpoint over real sockets (hypercorn on 127.0.0.1): no
token / wrong token / right token, a foreign Origin, a foreign Host, CSRF-shaped requests,
JSON errors, shutdown order and a port already in use."""

from __future__ import annotations

import json
import logging
import socket
import sys
from typing import Any

import pytest
import trio

from bargein.testing.web import GatedPlanner, HttpClient, connect, header, http, running
from bargein.transports.access import (
    AccessConfig,
    AccessPolicy,
    Grant,
    Refusal,
    Tier,
    bearer_token,
    host_name,
    startup_warnings,
)
from bargein.transports.app import DemoServer
from bargein.transports.demo import build_parser, main, server_from_args
from bargein.transports.protocol import (
    ErrorMessage,
    SessionEnded,
    SessionStart,
    SessionStarted,
    Text,
    TurnEnded,
)
from bargein.transports.sse import SseEvent

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound
RIGHT = "right-token_1"
WRONG = "wrong-token_2"
OPERATOR = "operator-token_3"
USER = {"messages": [{"role": "user", "content": "hello"}]}


# ------------------------------------------------------------------------------ the policy


def test_host_names_are_parsed_strictly() -> None:
    assert host_name("Example.COM.:8000") == "example.com"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1"
    for bad in ("", ":80", "::1", "[::1", "[::1]x", "host:port", "a:1:2"):
        assert host_name(bad) is None, bad


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer") is None
    assert bearer_token(None) is None


def test_policy_hosts_origins_and_tiers() -> None:
    policy = AccessPolicy(AccessConfig(token=RIGHT, allow_hosts=("demo.example",)), "127.0.0.1")
    assert policy.check_host("localhost:8000") is None
    assert policy.check_host("demo.example") is None
    assert isinstance(policy.check_host("evil.example:8000"), Refusal)
    assert isinstance(policy.check_host(None), Refusal)
    # The page's own origin, loopback origins and no Origin at all (not a browser) pass.
    assert policy.check_origin("http://demo.example:8000", "demo.example:8000") is None
    assert policy.check_origin("https://demo.example", "demo.example:443") is None
    assert policy.check_origin("http://localhost:3000", "127.0.0.1:8000") is None
    assert policy.check_origin(None, "127.0.0.1:8000") is None
    for origin in ("http://evil.example", "null", "http://demo.example:9000", "file://"):
        refusal = policy.check_origin(origin, "demo.example:8000")
        assert isinstance(refusal, Refusal) and refusal.code == "forbidden_origin", origin
    assert policy.check_token(Tier.PUBLIC, []) == Grant(authorized=True)
    assert policy.check_token(Tier.USER, [RIGHT]) == Grant(authorized=True)
    for presented in ([], [WRONG], [RIGHT, WRONG]):
        refusal = policy.check_token(Tier.USER, presented)
        assert isinstance(refusal, Refusal) and refusal.status == 401
    assert isinstance(policy.check_token(Tier.OPERATOR, [RIGHT]), Refusal)  # monitoring off


def test_operator_tier_uses_its_own_token_else_the_server_token() -> None:
    own = AccessPolicy(AccessConfig(RIGHT, OPERATOR, monitoring=True), "127.0.0.1")
    assert own.check_token(Tier.OPERATOR, [OPERATOR]) == Grant(authorized=True)
    assert isinstance(own.check_token(Tier.OPERATOR, [RIGHT]), Refusal)
    shared = AccessPolicy(AccessConfig(RIGHT, monitoring=True), "127.0.0.1")
    assert shared.check_token(Tier.OPERATOR, [RIGHT]) == Grant(authorized=True)
    open_local = AccessPolicy(AccessConfig(monitoring=True), "127.0.0.1")
    assert open_local.check_token(Tier.OPERATOR, []) == Grant(authorized=True)
    with pytest.raises(ValueError, match="monitoring"):
        AccessPolicy(AccessConfig(monitoring=True), "0.0.0.0")


def test_websocket_tokens_from_header_or_subprotocol() -> None:
    policy = AccessPolicy(AccessConfig(token=RIGHT), "127.0.0.1")
    host = "127.0.0.1:8000"
    by_protocol = policy.websocket(
        host=host, origin=None, authorization=None, subprotocols=[f"bearer.{RIGHT}", "bargein"]
    )
    # The app subprotocol is selected, so the token is not echoed back.
    assert by_protocol == Grant(authorized=True, subprotocol="bargein")
    by_header = policy.websocket(host=host, origin=None, authorization=f"Bearer {RIGHT}")
    assert by_header == Grant(authorized=True)
    # No token at the upgrade: the session handler checks session.start.token.
    assert policy.websocket(host=host, origin=None, authorization=None) == Grant(False)
    wrong = policy.websocket(host=host, origin=None, authorization=None, subprotocols=["bearer.x"])
    assert isinstance(wrong, Refusal) and wrong.code == "unauthorized"
    assert policy.refused == {"unauthorized": 1}


def test_tokens_must_be_header_safe_and_are_not_echoed() -> None:
    with pytest.raises(ValueError) as info:
        AccessConfig(token="has space secret")
    assert "secret" not in str(info.value)


def test_startup_warnings_for_non_loopback_binds() -> None:
    assert startup_warnings("127.0.0.1", AccessConfig()) == []
    assert startup_warnings("::1", AccessConfig()) == []
    warnings = startup_warnings("0.0.0.0", AccessConfig())
    assert any("without --token" in w for w in warnings)
    assert any("--allow-host" in w for w in warnings)
    assert startup_warnings("0.0.0.0", AccessConfig(token=RIGHT, allow_hosts=("x",))) == []


# ------------------------------------------------------------------------------ HTTP


async def fetch(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    read_body: bool = True,
) -> tuple[Any, HttpClient]:
    async with http(port) as client:
        response = await client.request(method, path, body, headers)
        while read_body and await client.item() is not None:
            pass
    return response, client


def error_code(client: HttpClient) -> str:
    body = json.loads(client.body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return str(body["error"]["code"])


def auth(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def token_server(**kwargs: Any) -> tuple[DemoServer, GatedPlanner]:
    planner = GatedPlanner([" hi"], [])
    planner.gate.set()
    access = AccessConfig(token=RIGHT, operator_token=OPERATOR, monitoring=True)
    return DemoServer(chat_planner=planner, access=access, **kwargs), planner


@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), (WRONG, 401), (OPERATOR, 401), (RIGHT, 200)]
)
async def test_chat_stream_needs_the_server_token(token: str | None, status: int) -> None:
    server, planner = token_server()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            response, client = await fetch(port, "POST", "/api/chat/stream", USER, auth(token))
    assert response.status_code == status
    if status == 401:
        assert error_code(client) == "unauthorized"
        assert (header(response, "www-authenticate") or "").startswith("Bearer")
        assert not planner.requests  # no planner work for an unauthenticated caller
        assert server.policy.refused == {"unauthorized": 1}
    else:
        assert len(planner.requests) == 1


@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), (WRONG, 401), (RIGHT, 401), (OPERATOR, 200)]
)
async def test_monitoring_needs_the_operator_token(token: str | None, status: int) -> None:
    server, _ = token_server(monitor_heartbeat=0.05)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, http(port) as client:
            response = await client.request("GET", "/api/monitoring/stream", None, auth(token))
            if status == 200:
                hello = await client.item()
                assert isinstance(hello, SseEvent) and hello.event == "hello"
            else:
                while await client.item() is not None:
                    pass
                assert error_code(client) == "unauthorized"
    assert response.status_code == status


async def test_chat_resume_needs_the_token_too() -> None:
    server, _ = token_server()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            response, _ = await fetch(port, "POST", "/api/chat/stream", USER, auth(RIGHT))
            stream_id = header(response, "x-stream-id")
            resume = {"Last-Event-ID": f"{stream_id}:1"}
            for token, status in ((None, 401), (WRONG, 401), (RIGHT, 200)):
                response, _ = await fetch(
                    port, "GET", "/api/chat/stream", None, {**resume, **auth(token)}
                )
                assert response.status_code == status, token


async def test_monitoring_is_off_unless_enabled() -> None:
    server = DemoServer(chat_planner=GatedPlanner([], []))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            response, client = await fetch(port, "GET", "/api/monitoring/stream")
    assert response.status_code == 404 and error_code(client) == "monitoring_disabled"


async def test_healthz_is_public_and_reveals_no_sessions_or_transcripts() -> None:
    server, _ = token_server()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(port, SessionStart(16000, token=RIGHT)) as client:
                (started,) = client.of(SessionStarted)
                await client.send(Text("what is two plus two"))
                await client.wait_for(lambda m: isinstance(m, TurnEnded))
                response, probe = await fetch(port, "GET", "/healthz")
    assert response.status_code == 200
    health = json.loads(probe.body)
    assert health["sessions"] == 1
    text = probe.body.decode()
    assert started.session_id not in text
    assert "two plus two" not in text and "4" not in text.split('"sessions"')[0]
    assert RIGHT not in text


async def test_the_page_static_files_and_healthz_need_no_token() -> None:
    server, _ = token_server()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            for path, status in (
                ("/", 200),
                ("/static/app.js", 200),
                ("/favicon.ico", 204),
                ("/healthz", 200),
            ):
                response, _ = await fetch(port, "GET", path)
                assert response.status_code == status, path
    assert not server.policy.refused


async def test_foreign_host_is_refused_on_every_endpoint() -> None:
    server, planner = token_server()
    evil = {"Host": "evil.example:8000", **auth(RIGHT)}
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            for method, path, body in (
                ("GET", "/", None),
                ("GET", "/static/app.js", None),
                ("GET", "/healthz", None),
                ("POST", "/api/chat/stream", USER),
                ("GET", "/api/monitoring/stream", None),
            ):
                response, client = await fetch(port, method, path, body, evil)
                assert response.status_code == 403, path
                assert error_code(client) == "forbidden_host", path
            async with connect(port, host="evil.example", subprotocols=[f"bearer.{RIGHT}"]) as ws:
                await ws.wait_closed()
    assert ws.close_code == 1008
    (error,) = ws.of(ErrorMessage)
    assert (error.code, error.fatal) == ("forbidden_host", True)
    assert not planner.requests and not server.sessions.stats.connections
    assert server.policy.refused == {"forbidden_host": 6}


async def test_foreign_origin_is_refused_with_a_close_code_and_counted() -> None:
    server = DemoServer(chat_planner=GatedPlanner([], []))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(port, headers={"Origin": "http://evil.example"}) as ws:
                await ws.wait_closed()
            response, client = await fetch(
                port, "POST", "/api/chat/stream", USER, {"Origin": "http://evil.example"}
            )
            # The page's own origin and loopback origins are fine.
            async with connect(
                port, SessionStart(16000), headers={"Origin": f"http://127.0.0.1:{port}"}
            ) as own:
                assert own.of(SessionStarted)
    assert ws.close_code == 1008
    assert [(e.code, e.fatal) for e in ws.of(ErrorMessage)] == [("forbidden_origin", True)]
    assert response.status_code == 403 and error_code(client) == "forbidden_origin"
    assert server.policy.refused == {"forbidden_origin": 2}
    assert server.sessions.stats.connections == 1  # the refused one never reached the handler


async def test_allowed_origin_and_host_can_be_configured() -> None:
    access = AccessConfig(allow_origins=("https://app.example",), allow_hosts=("demo.example",))
    server = DemoServer(chat_planner=GatedPlanner([], []), access=access)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(
                port,
                SessionStart(16000),
                host="demo.example",
                headers={"Origin": "https://app.example"},
            ) as ws:
                assert ws.of(SessionStarted)


@pytest.mark.parametrize(
    ("kind", "closes"),
    [
        ("none", 1008),
        ("wrong_header", 1008),
        ("wrong_protocol", 1008),
        ("wrong_start", 1008),
        ("header", 0),
        ("protocol", 0),
        ("start", 0),
    ],
)
async def test_websocket_token_by_header_subprotocol_or_session_start(
    kind: str, closes: int
) -> None:
    server = DemoServer(access=AccessConfig(token=RIGHT))
    headers = {"wrong_header": auth(WRONG), "header": auth(RIGHT)}.get(kind, {})
    protocols = {"wrong_protocol": [f"bearer.{WRONG}"], "protocol": [f"bearer.{RIGHT}", "bargein"]}
    start_token = {"start": RIGHT, "wrong_start": WRONG}.get(kind)
    with trio.fail_after(HANG_GUARD):
        async with (
            running(server) as port,
            connect(port, headers=headers, subprotocols=protocols.get(kind)) as client,
        ):
            if kind in ("wrong_header", "wrong_protocol"):
                await client.wait_closed()  # refused at the upgrade, before session.start
            else:
                await client.send(SessionStart(16000, token=start_token))
                first = await client.wait_for(
                    lambda m: isinstance(m, SessionStarted | ErrorMessage)
                )
                if closes:
                    await client.wait_closed()
                else:
                    assert isinstance(first, SessionStarted)
                    if kind == "protocol":
                        assert client.ws.subprotocol == "bargein"
    if closes:
        assert client.close_code == closes
        assert [e.code for e in client.of(ErrorMessage)] == ["unauthorized"]
        assert not client.of(SessionStarted)


async def test_tokens_never_reach_logs_events_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server, _ = token_server(monitor_heartbeat=0.05)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, http(port) as monitor:
            await monitor.request("GET", "/api/monitoring/stream", None, auth(OPERATOR))
            async with connect(port, SessionStart(16000, token=RIGHT)) as ok:
                # A one-line answer (the local planner's greeting is ~12 s of real-time speech).
                await ok.send(Text("what is two plus two"))
                await ok.wait_for(lambda m: isinstance(m, TurnEnded))
            async with connect(port) as bad:
                await bad.send(SessionStart(16000, token=WRONG))
                await bad.wait_closed()
            async with connect(port, subprotocols=[f"bearer.{WRONG}"]) as bad_protocol:
                await bad_protocol.wait_closed()
            await fetch(port, "POST", "/api/chat/stream", USER, auth(WRONG))
            await fetch(port, "GET", "/api/monitoring/stream", None, auth(WRONG))
            while b"session_ended" not in monitor.body:
                assert await monitor.item() is not None
            _, health = await fetch(port, "GET", "/healthz")
    seen = [caplog.text, monitor.body.decode(), health.body.decode()]
    seen += [repr(m) for c in (ok, bad, bad_protocol) for m in c.messages]
    for secret in (RIGHT, WRONG, OPERATOR):
        assert not [s for s in seen if secret in s], secret


# ------------------------------------------------------------------------------ exactness


async def test_text_plain_post_is_refused_before_the_planner_runs() -> None:
    planner = GatedPlanner([], [])
    server = DemoServer(chat_planner=planner)
    body = json.dumps(USER).encode()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
                response, client = await fetch(
                    port, "POST", "/api/chat/stream", body, {"Content-Type": content_type}
                )
                assert response.status_code == 415, content_type
                assert error_code(client) == "unsupported_media_type"
            ok, _ = await fetch(
                port,
                "POST",
                "/api/chat/stream",
                body,
                {"Content-Type": "Application/JSON; charset=utf-8"},
                read_body=False,
            )
    assert ok.status_code == 200
    assert len(planner.requests) == 1


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("PUT", "/api/chat/stream", 405, "method_not_allowed"),
        ("DELETE", "/api/chat/stream", 405, "method_not_allowed"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/static/nope.js", 404, "not_found"),
        ("GET", "/api/chat/stream", 400, "missing_last_event_id"),
    ],
)
async def test_http_errors_are_json(method: str, path: str, status: int, code: str) -> None:
    server = DemoServer(chat_planner=GatedPlanner([], []))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            response, client = await fetch(port, method, path, b"{}" if method != "GET" else None)
    assert response.status_code == status
    assert header(response, "content-type") == "application/json"
    assert error_code(client) == code
    if status == 405:
        assert "POST" in (header(response, "allow") or "") or path == "/healthz"


async def test_body_over_one_mib_is_a_json_413() -> None:
    planner = GatedPlanner([], [])
    server = DemoServer(chat_planner=planner)
    server2 = DemoServer(chat_planner=planner)
    big = {"messages": [{"role": "user", "content": "x" * (1024 * 1024)}]}
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            response, client = await fetch(port, "POST", "/api/chat/stream", big)
    assert response.status_code == 413
    assert error_code(client) == "body_too_large"
    with trio.fail_after(HANG_GUARD):
        async with running(server2) as port:
            chunked, client = await fetch(
                port, "POST", "/api/chat/stream", big, {"Transfer-Encoding": "chunked"}
            )
    assert chunked.status_code == 413  # no Content-Length to refuse by: counted as it arrives
    assert error_code(client) == "body_too_large"
    assert not planner.requests


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_is_not_json_on_the_chat_endpoint(constant: str) -> None:
    planner = GatedPlanner([], [])
    server = DemoServer(chat_planner=planner)
    body = f'{{"messages": [{{"role": "user", "content": "hi"}}], "x": {constant}}}'.encode()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            response, client = await fetch(port, "POST", "/api/chat/stream", body)
    assert response.status_code == 400 and error_code(client) == "bad_json"
    assert not planner.requests


async def test_page_and_static_files_carry_security_headers_and_no_cors() -> None:
    server = DemoServer(chat_planner=GatedPlanner([], []))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            for path in ("/", "/static/app.js", "/healthz"):
                response, _ = await fetch(
                    port, "GET", path, None, {"Origin": f"http://localhost:{port}"}
                )
                assert response.status_code == 200, path
                csp = header(response, "content-security-policy") or ""
                assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
                assert header(response, "x-frame-options") == "DENY"
                assert header(response, "x-content-type-options") == "nosniff"
                assert header(response, "referrer-policy") == "no-referrer"
                names = [k.decode().lower() for k, _ in response.headers]
                assert not [n for n in names if n.startswith("access-control-")], path
            icon, _ = await fetch(port, "GET", "/favicon.ico")
    assert icon.status_code == 204


def test_llm_stall_timeout_option_reaches_the_planner() -> None:
    parser = build_parser()
    base = ["--llm-base-url", "http://127.0.0.1:9/v1"]
    assert parser.parse_args(base).llm_stall_timeout > 15.0  # not the 15 s heartbeat
    server = server_from_args(parser.parse_args([*base, "--llm-stall-timeout", "42.5"]))
    assert getattr(server.chat.planner, "stall_timeout", None) == 42.5
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--llm-stall-timeout", "0"])


def test_monitoring_on_a_public_bind_without_a_token_is_refused_at_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "0.0.0.0", "--port", "0", "--monitoring"])
    assert exit_info.value.code == 2
    assert "operator-token" in capsys.readouterr().err


# ------------------------------------------------------------------------------ lifecycle


async def test_shutdown_ends_every_stream_with_a_final_event() -> None:
    planner = GatedPlanner([" thinking"], [" never"])
    server = DemoServer(
        chat_planner=planner, access=AccessConfig(monitoring=True), monitor_heartbeat=0.05
    )
    stop = trio.Event()
    served = trio.Event()
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:

            async def serve(task_status: trio.TaskStatus[list[str]]) -> None:
                await server.serve(
                    "127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status
                )
                served.set()

            urls: list[str] = await nursery.start(serve)
            port = int(urls[0].rsplit(":", 1)[1])
            async with http(port) as monitor, http(port) as chat:
                await monitor.request("GET", "/api/monitoring/stream")
                hello = await monitor.item()  # subscribed from here on
                assert isinstance(hello, SseEvent) and hello.event == "hello"
                await chat.request("POST", "/api/chat/stream", USER)
                while b'"text":" thinking"' not in chat.body:
                    assert await chat.item() is not None
                async with connect(port, SessionStart(16000)) as voice:
                    while b"session_started" not in monitor.body:
                        assert await monitor.item() is not None
                    stop.set()
                    chat_events = await chat.events()
                    monitor_events = await monitor.events()
                    await voice.wait_closed()
            await served.wait()
    # Every stream ended complete (no cut chunk) with its final event last.
    assert chat.complete and monitor.complete
    assert chat_events[-1].event == "error"
    assert json.loads(chat_events[-1].data)["code"] == "shutting_down"
    assert monitor_events[-1].event == "error"
    assert json.loads(monitor_events[-1].data)["code"] == "shutting_down"
    # The monitor's final event comes after the session it watched has ended.
    names = [e.event for e in monitor_events]
    assert "session_ended" in names and names.index("session_ended") < len(names) - 1
    errors = voice.of(ErrorMessage)
    assert [(e.code, e.fatal) for e in errors] == [("shutting_down", True)]
    assert voice.of(SessionEnded) or voice.close_code == 1001
    assert voice.close_code == 1001


async def test_port_in_use_is_one_line_and_a_failure_exit() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with trio.fail_after(HANG_GUARD * 2):
            result = await trio.run_process(
                [sys.executable, "-m", "bargein.cli", "demo", "--port", str(port)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1
    assert lines == [f"bargein demo: port {port} on 127.0.0.1 is already in use"], lines
