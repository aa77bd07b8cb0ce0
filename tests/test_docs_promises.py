"""What README.md and docs/ promise about options, defaults, limits and codes is what the code
does. Outside testers write clients only from the docs and `--help`, so each promise pinned
here is checked on both sides: the sentence is in the doc, and the code has that number, flag
or code. Changing either alone fails a test here."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from bargein.cli import BENCHMARKS
from bargein.run_file import build_parser as run_parser
from bargein.session_config import SessionConfig
from bargein.transports import protocol as wire
from bargein.transports.chat.config import ChatConfig
from bargein.transports.chat.request import MAX_CONTENT_CHARS, MAX_MESSAGES
from bargein.transports.demo import build_parser as demo_parser
from bargein.transports.demo import openai_planner
from bargein.transports.protocol import limits as WL
from bargein.transports.serve import build_parser as serve_parser
from bargein.transports.websocket.limits import CLOSE_CODES, ConnectionLimits

REPO = Path(__file__).resolve().parents[1]


def doc(name: str) -> str:
    text = (REPO / name).read_text(encoding="utf-8")
    return re.sub(r"\s+", " ", text)  # promises may wrap across lines


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def table_flags(text: str) -> set[str]:
    """Flags named in the first cell of a markdown table row (the options tables)."""
    flags: set[str] = set()
    for row in re.findall(r"^\| ((?:[^|]|\\\|)*?) \|", text, re.M):  # `\|` stays in a cell
        flags.update(re.findall(r"`(--[a-z][a-z0-9-]*)", row))
    return flags


def test_every_option_in_the_web_and_run_tables_is_a_real_flag() -> None:
    raw_web = (REPO / "docs/web.md").read_text(encoding="utf-8")
    raw_run = (REPO / "docs/run.md").read_text(encoding="utf-8")
    web, run = table_flags(raw_web), table_flags(raw_run)
    assert len(web) >= 15 and len(run) >= 12  # the tables were found
    assert web <= set(options(demo_parser())), web - set(options(demo_parser()))
    assert run <= set(options(run_parser())), run - set(options(run_parser()))
    # ... and every flag of the commands is documented in its table.
    hidden = {"-h", "--help"}
    assert set(options(demo_parser())) - hidden <= web
    assert set(options(run_parser())) - hidden <= run


@pytest.mark.parametrize(
    ("flag", "value", "promise"),
    [
        ("--host", "127.0.0.1", "where to listen (default 127.0.0.1:8000)"),
        ("--port", 8000, "where to listen (default 127.0.0.1:8000)"),
        ("--max-sessions", 32, "concurrent voice sessions (default 32)"),
        ("--llm-stall-timeout", 60.0, "mid-stream (default 60; must be > 0)"),
        ("--policy", "duck_classify_speaker", "that name none (default `duck_classify_speaker`"),
        ("--monitoring", False, "(off by default: `404 monitoring_disabled`)"),
    ],
)
def test_demo_defaults_are_the_documented_ones(flag: str, value: object, promise: str) -> None:
    assert promise in doc("docs/web.md")
    assert options(demo_parser())[flag].default == value


def test_demo_llm_model_defaults_to_the_documented_model() -> None:
    assert "model name (default `gpt-4o-mini`)" in doc("docs/web.md")
    from bargein.engines.openai_compat import OpenAIPlanner

    planner = openai_planner("http://127.0.0.1:9/v1", None, None)
    assert isinstance(planner, OpenAIPlanner)
    assert planner.endpoints[0].model == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("flag", "value", "promise"),
    [
        ("--policy", "duck_classify_speaker", "| `--policy NAME` | `duck_classify_speaker`"),
        ("--rate-wpm", 175, "| `--rate-wpm N` | 175 |"),
        ("--realtime", False, "| `--realtime` | off |"),
        ("--json", False, "| `--json` | off |"),
        ("--out", None, "| `--out REPLY.wav` | none |"),
        ("--llm-base-url", None, "| `--llm-base-url URL` | none |"),
    ],
)
def test_run_defaults_are_the_documented_ones(flag: str, value: object, promise: str) -> None:
    assert promise in doc("docs/run.md")
    assert options(run_parser())[flag].default == value


@pytest.mark.parametrize(
    ("flag", "value", "promise"),
    [
        ("--workers", 2, "worker processes (default 2)"),
        ("--host", "127.0.0.1", "where the workers listen (default 127.0.0.1)"),
        ("--port", 8000, "worker i listens on PORT+i (default 8000; 0: each an ephemeral port)"),
    ],
)
def test_serve_defaults_are_the_documented_ones(flag: str, value: object, promise: str) -> None:
    assert promise in doc("docs/deploy.md")
    assert options(serve_parser())[flag].default == value


def test_readme_lists_every_benchmark() -> None:
    listed = re.search(r"bargein bench ([a-z|]+) --json", doc("README.md"))
    assert listed is not None
    assert listed.group(1).split("|") == list(BENCHMARKS)


def test_every_error_code_is_in_the_protocol_table_and_nothing_else() -> None:
    text = (REPO / "docs/protocol.md").read_text(encoding="utf-8")
    section = text.split("## Error codes", 1)[1].split("\n\n", 3)[2]
    rows = re.findall(r"^\| `([a-z_]+)` \| (yes|no) \|", section, re.M)
    documented = {code for code, _ in rows}
    # bad_audio_header is the client codec's own (documented below the table).
    server_codes = {c.value for c in wire.ErrorCode} - {"bad_audio_header"}
    assert documented == server_codes
    assert "two additions: `bad_audio_header`" in doc("docs/protocol.md")
    # Every code with a close code of its own is documented fatal.
    fatal = {code for code, f in rows if f == "yes"}
    assert set(CLOSE_CODES) <= fatal


def test_close_codes_are_the_documented_ones() -> None:
    promise = (
        "1000 a normal end, 1001 `shutting_down`, 1011 `session_failed` / `internal`, 1013 "
        "`server_busy` / `too_many_sessions`, 4000 `session_taken_over`, 1008 every other fatal "
        "code"
    )
    assert promise in doc("docs/protocol.md")
    assert CLOSE_CODES == {
        "shutting_down": 1001,
        "session_failed": 1011,
        "internal": 1011,
        "server_busy": 1013,
        "too_many_sessions": 1013,
        "session_taken_over": 4000,
    }


# (doc, sentence of the doc, the value in the code, the value the sentence states)
P, W, CL = "docs/protocol.md", "docs/web.md", ConnectionLimits()
LIMITS: list[tuple[str, str, object, object]] = [
    (P, "| text frame | 65 536 characters |", wire.MAX_TEXT_FRAME_CHARS, 65_536),
    (P, "| `text` | 4000 characters |", wire.MAX_INPUT_TEXT_CHARS, 4000),
    (P, "1 s at the declared rate (`2 × rate` bytes)", wire.max_audio_bytes(16000), 32_000),
    (P, "`options`: ≤ 16 entries", wire.MAX_OPTIONS, 16),
    (P, "a string (≤ 256 characters", wire.MAX_OPTION_VALUE_CHARS, 256),
    (P, "a number with magnitude ≤ 1 000 000", wire.MAX_OPTION_NUMBER, 1_000_000),
    (P, "`token` (≤ 4096 chars)", wire.MAX_TOKEN_CHARS, 4096),
    (P, "`resume_secret` (1–256 printable ASCII", wire.MAX_RESUME_SECRET_CHARS, 256),
    (P, "at most 200 and 48 000 encoded characters", wire.MAX_HISTORY_ENTRIES, 200),
    (P, "at most 200 and 48 000 encoded characters", wire.MAX_HISTORY_CHARS, 48_000),
    (P, "| rejected frames per connection | 100;", WL.DEFAULT_MAX_REJECTIONS, 100),
    (P, "the last 64 turns are", WL.TRACKED_TURNS, 64),
    (P, "10 s after connecting", CL.handshake_timeout, 10.0),
    (P, "for 120 s (`ConnectionLimits.idle_timeout`)", CL.idle_timeout, 120.0),
    (P, "one every 2 s while it sends, `ConnectionLimits.ping_interval`", CL.ping_interval, 2.0),
    (P, "for 7 s while one waits (`pong_timeout`", CL.pong_timeout, 7.0),
    (P, "stuck for 5 s (`ConnectionLimits.stall_timeout`", CL.stall_timeout, 5.0),
    (P, "at most 16 KiB wait unsent", CL.max_unsent_bytes, 16 * 1024),
    (P, "2000 control frames unsent", CL.max_control_frames, 2000),
    (P, "for at most 2 s (`close_timeout`)", CL.close_timeout, 2.0),
    (P, "at most 10 s (`drain_timeout`", CL.drain_timeout, 10.0),
    (W, "audio: at most 250 frames (5 s) wait", CL.max_audio_frames, 250),
    (W, "Each stream keeps its last 4096 events", ChatConfig().replay_capacity, 4096),
    (W, "the server keeps up to 64 streams", ChatConfig().max_streams, 64),
    (W, "attached to a stream for 10 s", ChatConfig().orphan_timeout, 10.0),
    (W, "a comment `: ping` every 15 s", ChatConfig().heartbeat_interval, 15.0),
    (W, "It starts with `retry: 1000`", ChatConfig().retry_ms, 1000),
    (W, "(1–200 messages, each ≤ 20 000 characters", MAX_MESSAGES, 200),
    (W, "(1–200 messages, each ≤ 20 000 characters", MAX_CONTENT_CHARS, 20_000),
]


def _telephony() -> list[tuple[str, str, object, object]]:
    from bargein.transports.telephony import codec, dtmf, handler
    from bargein.transports.telephony.transport import TelephonyLimits

    limits, doc = TelephonyLimits(), "docs/telephony.md"
    return [
        (doc, "after 1.5 s without a key, or at 32 digits", dtmf.DTMF_GAP_S, 1.5),
        (doc, "after 1.5 s without a key, or at 32 digits", dtmf.MAX_DIGITS, 32),
        (doc, "`lead_ms` = **80 ms** ahead", handler.DEFAULT_LEAD_MS, 80),
        (doc, "`lead + playback_grace_ms` (1000 ms on the phone)", handler.PLAYBACK_GRACE_MS, 1000),
        (doc, "a bounded queue (200 media frames", limits.max_audio_frames, 200),
        (doc, "a write stuck 5 s, or 512 unread control frames", limits.stall_timeout, 5.0),
        (doc, "a write stuck 5 s, or 512 unread control frames", limits.max_control_frames, 512),
        (doc, "Beyond 1000 rejections the call ends", limits.max_rejections, 1000),
        (doc, "(within 10 s, else the stream is closed", limits.handshake_timeout, 10.0),
        (doc, "once 8 later frames are held", codec.REORDER_WINDOW, 8),
        (doc, "Custom parameters (both carriers): at most 32", codec.MAX_PARAMETERS, 32),
    ]


LIMITS += _telephony()


def _realtime() -> list[tuple[str, str, object, object]]:
    from bargein.transports.realtime import client_events, config, connection, input_audio, items

    doc = "docs/realtime.md"
    return [
        (doc, "`event_id` (a string ≤ 64 characters)", client_events.MAX_EVENT_ID_CHARS, 64),
        (doc, "Text ≤ 32768 chars, ≤ 16 parts", client_events.MAX_ITEM_TEXT_CHARS, 32768),
        (doc, "`output` ≤ 65536 chars", client_events.MAX_OUTPUT_CHARS, 65536),
        (doc, "| `instructions` | string ≤ 32768 |", config.MAX_INSTRUCTIONS_CHARS, 32768),
        (doc, "≤ 64 `function` tools", config.MAX_TOOLS, 64),
        (doc, "≤ 128 KiB JSON", config.MAX_TOOLS_JSON, 128 * 1024),
        (doc, "still running (≤ 15 s)", connection.TRANSCRIPT_WAIT_S, 15.0),
        (doc, "a write stuck 10 s, or 4096 unread events", connection.STALL_TIMEOUT_S, 10.0),
        (doc, "a write stuck 10 s, or 4096 unread events", connection.MAX_CONTROL_FRAMES, 4096),
        (doc, "beyond 1000 queued (20 s; counted)", connection.MAX_AUDIO_FRAMES, 1000),
        (doc, "(at most 300 s, else `input_audio_buffer_full`)", input_audio.MAX_BUFFER_S, 300),
        (doc, "at most 1024 items", items.MAX_ITEMS, 1024),
    ]


LIMITS += _realtime()


def _app() -> list[tuple[str, str, object, object]]:
    from bargein.transports import app

    web, wire_doc = "docs/web.md", "docs/protocol.md"
    return [
        (web, "is 1 s + 1 s + 2 s = **4 s**", app.SESSIONS_END_TIMEOUT, 1.0),
        (web, "is 1 s + 1 s + 2 s = **4 s**", app.GRACEFUL_TIMEOUT, 1.0),
        (web, "`body_too_large`: a request body over 1 MiB", app.MAX_HTTP_BODY, 2**20),
        (wire_doc, "| any WebSocket message | 1 MiB (the server", app.MAX_WS_MESSAGE, 2**20),
    ]


LIMITS += _app()


@pytest.mark.parametrize(("name", "promise", "actual", "stated"), LIMITS)
def test_documented_limits_are_the_codes(
    name: str, promise: str, actual: object, stated: object
) -> None:
    assert promise in doc(name), f"{name} no longer says {promise!r}"
    assert actual == stated


def test_session_server_limits_are_the_documented_ones() -> None:
    import inspect

    from bargein.transports.websocket.server import SessionServer

    params = inspect.signature(SessionServer.__init__).parameters
    assert "| sessions per client address | 8 at once" in doc("docs/protocol.md")
    assert params["max_sessions_per_client"].default == 8
    assert "the server remembers the 256 most recent ended conversations" in doc("docs/protocol.md")
    assert params["remembered_conversations"].default == 256


def test_the_session_config_table_is_the_dataclass() -> None:
    """Every field of SessionConfig is in docs/architecture.md's table with its default."""
    text = (REPO / "docs/architecture.md").read_text(encoding="utf-8")
    section = text.split("## Session configuration", 1)[1].split("## The actor contract", 1)[0]
    rows = re.findall(r"^\| ([^|]+) \| ([^|]+) \|", section, re.M)[1:]  # after the header row
    documented: dict[str, str] = {}
    cells: dict[str, str] = {}
    for names, default in rows:
        values = [v.strip().strip('`"') for v in default.split(",")]
        fields = re.findall(r"`(\w+)`", names)
        for i, field in enumerate(fields):
            documented[field] = values[min(i, len(values) - 1)]
            cells[field] = default
    config = SessionConfig()
    missing = {f.name for f in dataclasses.fields(SessionConfig)} - set(documented)
    assert not missing, f"SessionConfig fields not in docs/architecture.md: {missing}"
    for field in dataclasses.fields(SessionConfig):
        value = getattr(config, field.name)
        if field.name in ("vad", "policy"):
            continue  # documented as their constructors' defaults
        stated = documented[field.name]
        if isinstance(value, str):
            assert f'"{value}"' in cells[field.name] or stated == value, field.name
        elif value is None or isinstance(value, bool):
            assert stated == repr(value), field.name
        elif value == ():
            assert stated == "()", field.name
        else:
            assert float(stated) == value, field.name


def _protocol_rows(section: str) -> dict[str, str]:
    text = (REPO / "docs/protocol.md").read_text(encoding="utf-8")
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_.]+)` *\| ([^\n]*)$", body, re.M)
    # The fields cell only (a `\|` inside a cell is not a cell boundary).
    return {name: re.split(r"(?<!\\)\|", rest, maxsplit=1)[0] for name, rest in rows}


@pytest.mark.parametrize(
    ("section", "union"),
    [("## Client → server", "ClientMessage"), ("## Server → client", "ServerMessage")],
)
def test_every_wire_message_and_field_is_in_the_protocol_tables(section: str, union: str) -> None:
    import typing

    from bargein.transports.protocol import messages

    rows = _protocol_rows(section)
    classes = [c for c in typing.get_args(getattr(messages, union)) if c.TYPE != "audio"]
    assert {c.TYPE for c in classes} == set(rows), section
    for cls in classes:
        for field in dataclasses.fields(cls):
            assert f"`{field.name}`" in rows[cls.TYPE], f"{cls.TYPE}.{field.name} undocumented"


def test_every_event_type_has_a_row_in_events_md() -> None:
    from bargein.runtime.events import EventType

    text = (REPO / "docs/events.md").read_text(encoding="utf-8")
    rows = {
        n
        for cell in re.findall(r"^\| ([^|]+) \|", text, re.M)
        for n in re.findall(r"`([a-z_]+)`", cell)
    }
    assert {e.value for e in EventType} <= rows


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_takes_json_as_the_readme_says(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    main = importlib.import_module(f"bargein.benchmarks.{name}").main
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "--json" in capsys.readouterr().out
