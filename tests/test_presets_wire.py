"""Every preset of the catalogue (bargein.presets) is selectable wherever a session starts: the
`/ws` `session.start` option `policy` (over real sockets, hypercorn on 127.0.0.1), the server's
default (`DemoServer(policy=...)`, `bargein demo --policy`), telephony call options and
`bargein run --policy`. An unknown name is told, counted and the default used."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping

import pytest
import trio

from bargein.engines.base import Engines
from bargein.presets import PRESETS, preset
from bargein.runtime.events import Event, EventType
from bargein.session import Session, SessionConfig
from bargein.testing.carrier import call
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import Client, connect, running
from bargein.transports.app import DemoServer, policy_session_config
from bargein.transports.protocol import (
    Capabilities,
    ClientProtocol,
    ErrorCode,
    ErrorMessage,
    OptionValue,
    RemoteProtocolError,
    ServerProtocol,
    SessionStart,
    SessionStarted,
)
from bargein.transports.protocol.fields import MAX_DESCRIPTION_CHARS, NAME_RE
from bargein.transports.telephony import EXTENSION, TWILIO, TelephonyServer
from bargein.transports.telephony.handler import CallRefused, call_options
from bargein.transports.websocket import default_session_config

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound


def scripted(_: Mapping[str, OptionValue]) -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner(["Four."]), ScriptedTts(16000))


def started_of(client: Client) -> SessionStarted:
    (started,) = [m for m in client.messages if isinstance(m, SessionStarted)]
    return started


def live_session(server: DemoServer, session_id: str) -> Session:
    return server.sessions.sessions[session_id]


def expected(name: str | None, session_id: str) -> SessionConfig:
    base = default_session_config(SessionStart(16000), session_id)
    return base if name is None else preset(name).apply(base)


async def test_every_preset_is_selectable_over_ws_and_reported_in_session_started() -> None:
    server = DemoServer(scripted)
    events: list[Event] = []
    server.hub.add_listener(events.append)
    seen: dict[str, tuple[str | None, SessionConfig]] = {}
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            for name in PRESETS:
                start = SessionStart(16000, options={"policy": name})
                async with connect(port, start) as client:
                    started = started_of(client)
                    config = live_session(server, started.session_id).config
                    seen[name] = (started.policy, config)
                    assert not [m for m in client.messages if isinstance(m, ErrorMessage)]
                await server.sessions.wait_idle()
    for name, (reported, config) in seen.items():
        assert reported == name
        want = expected(name, config.session_id or "")
        assert config.policy == want.policy and config.vad == want.vad, name
        for field, value in PRESETS[name].session.items():
            assert getattr(config, field) == value, (name, field)
        assert config.preset == name
    # The trace's session_started names the preset too.
    traced = [e.data.get("preset") for e in events if e.type is EventType.SESSION_STARTED]
    assert traced == list(PRESETS)


async def test_capabilities_list_every_preset_with_its_description() -> None:
    server = DemoServer(scripted)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port, SessionStart(16000)) as client:
            started = started_of(client)
    caps = started.capabilities
    assert caps is not None
    assert list(caps.policies) == list(PRESETS)
    assert dict(caps.policy_descriptions) == {n: p.description for n, p in PRESETS.items()}
    assert "policy_descriptions" in caps.options["policy"]
    # No preset named, no server default: SessionConfig's own settings, no preset reported.
    assert started.policy is None


@pytest.mark.parametrize("bad", ["no_such_preset", 3, True])
async def test_an_unknown_policy_is_told_counted_and_the_default_used(bad: OptionValue) -> None:
    server = DemoServer(scripted, policy="confirm_words")
    rejected: list[Event] = []
    server.hub.add_listener(
        lambda e: rejected.append(e) if e.type is EventType.INPUT_REJECTED else None
    )
    start = SessionStart(16000, options={"policy": bad, "voice": "en-us"})
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port, start) as client:
            started = started_of(client)
            config = live_session(server, started.session_id).config
            errors = [m for m in client.messages if isinstance(m, ErrorMessage)]
            ended_early = client.closed
        await server.sessions.wait_idle()
    # Told before session.started, not fatal; the session runs the server's default preset.
    assert [(e.code, e.fatal) for e in errors] == [("bad_field", False)]
    assert "unknown policy" in errors[0].message and not ended_early
    assert client.messages.index(errors[0]) < client.messages.index(started)
    assert started.policy == "confirm_words"
    assert config.policy == preset("confirm_words").apply(SessionConfig()).policy
    # Counted: in the session's record and in the server's /healthz counters.
    assert [e.data["code"] for e in rejected] == ["bad_field"]
    assert server.sessions.stats.rejections["bad_field"] == 1
    assert server.sessions.stats.refused == {}


async def test_the_server_default_preset_applies_when_the_client_names_none() -> None:
    server = DemoServer(scripted, policy="onset")
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(port, SessionStart(16000)) as client:
                default = started_of(client).policy
                default_mode = live_session(server, started_of(client).session_id).config
            await server.sessions.wait_idle()
            start = SessionStart(16000, options={"policy": "patient_endpoint"})
            async with connect(port, start) as client:
                chosen = started_of(client).policy
                chosen_config = live_session(server, started_of(client).session_id).config
    assert default == "onset" and default_mode.policy.mode == "onset"
    assert chosen == "patient_endpoint" and chosen_config.vad.stop_ms == 900


def test_policy_session_config_refuses_an_unknown_default_and_ignores_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown policy preset 'nope'"):
        policy_session_config("nope")
    with pytest.raises(ValueError, match="unknown policy preset"):
        DemoServer(scripted, policy="nope")
    make = policy_session_config("onset")
    # Only reachable without `known_policy` (a bare SessionServer): never a crash.
    config = make(SessionStart(16000, options={"policy": "nope"}), "s1")
    assert config.preset == "onset" and config.policy.mode == "onset"
    plain = policy_session_config()(SessionStart(16000), "s1")
    assert plain == dataclasses.replace(default_session_config(SessionStart(16000), "s1"))


# ------------------------------------------------------------------ the wire fields themselves


def _started_frame(**fields: object) -> str:
    caps = {"sample_rates": [16000], "max_audio_bytes": 32000, "policies": ["onset"]}
    body = {"session_id": "abc", "sample_rate": 16000, "output_rate": 16000, "protocol": 1}
    body |= {"max_audio_bytes": 32000, "resumed": False}
    return json.dumps({"type": "session.started", "v": 1, **body, "capabilities": caps, **fields})


def test_session_started_carries_the_policy_and_the_descriptions_both_ways() -> None:
    client, server = ClientProtocol(), ServerProtocol()
    server.receive(client.send(SessionStart(16000)))
    caps = Capabilities(
        (16000,), 32000, policies=("onset",), policy_descriptions={"onset": "cancel at once"}
    )
    started = SessionStarted("abc", 16000, 16000, capabilities=caps, policy="onset")
    encoded = server.send(started)
    assert json.loads(encoded)["capabilities"]["policy_descriptions"] == {"onset": "cancel at once"}
    assert json.loads(encoded)["policy"] == "onset"
    assert client.receive(encoded) == started


@pytest.mark.parametrize(
    "fields",
    [
        {"policy": "Not A Name"},
        {"policy": 3},
        {
            "capabilities": {
                "sample_rates": [16000],
                "max_audio_bytes": 32000,
                "policies": ["onset"],
                "policy_descriptions": {"confirm": "not listed"},
            }
        },
        {
            "capabilities": {
                "sample_rates": [16000],
                "max_audio_bytes": 32000,
                "policies": ["onset"],
                "policy_descriptions": {"onset": "x" * (MAX_DESCRIPTION_CHARS + 1)},
            }
        },
    ],
)
def test_a_client_refuses_a_malformed_policy_or_description(fields: dict[str, object]) -> None:
    fine = ClientProtocol()
    fine.send(SessionStart(16000))
    assert isinstance(fine.receive(_started_frame(policy="onset")), SessionStarted)
    client = ClientProtocol()
    client.send(SessionStart(16000))
    with pytest.raises(RemoteProtocolError) as info:
        client.receive(_started_frame(**fields))
    assert info.value.code is ErrorCode.BAD_FIELD


def test_every_preset_fits_the_wire() -> None:
    """A name or description the codec refuses would fail every `/ws` session's start."""
    for name, p in PRESETS.items():
        assert NAME_RE.fullmatch(name), name
        assert 0 < len(p.description) <= MAX_DESCRIPTION_CHARS, name


# ------------------------------------------------------------------------------- telephony


def test_every_preset_is_a_call_option_and_others_are_refused() -> None:
    server = TelephonyServer(scripted)
    for name in PRESETS:
        assert call_options({"policy": name}) == {"policy": name}
        config = server._config("call-1", {"policy": name})
        assert config.preset == name
        assert config.policy == preset(name).apply(SessionConfig()).policy
        assert config.vad == preset(name).apply(SessionConfig()).vad
        for field, value in PRESETS[name].session.items():
            assert getattr(config, field) == value, (name, field)
        assert config.input_rate == 8000  # the call's own settings are kept
    with pytest.raises(CallRefused, match="must be a preset") as refused:
        call_options({"policy": "no_such_preset"})
    assert refused.value.code == "bad_field"
    # No name: the server's default preset, else SessionConfig's own settings.
    assert TelephonyServer(scripted, default_policy="onset")._config("c", {}).preset == "onset"
    assert server._config("c", {}).policy == SessionConfig().policy
    with pytest.raises(ValueError, match="unknown policy preset"):
        TelephonyServer(scripted, default_policy="nope")


async def test_a_call_runs_the_preset_its_parameters_name_or_the_server_default() -> None:
    server = DemoServer(scripted, policy="echo_guard")
    events: list[Event] = []
    server.hub.add_listener(events.append)
    # A preset with the echo canceller runs on an 8 kHz call too.
    aec = [{"policy": n} for n, p in PRESETS.items() if p.session.get("echo_cancel")][:1]
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            tel = server.app.extensions[EXTENSION]
            for parameters in ({"policy": "patient_endpoint"}, {}, *aec):
                async with call(port, TWILIO, parameters=parameters) as sim:
                    await sim.stop()
                    await sim.closed.wait()
                await tel.wait_idle()
    started = [e.data for e in events if e.type is EventType.SESSION_STARTED]
    assert [(d["preset"], d["policy"]) for d in started] == [
        ("patient_endpoint", "confirm"),
        ("echo_guard", "confirm"),
    ] + [(a["policy"], PRESETS[a["policy"]].interruption_policy().mode) for a in aec]
    ended = [e.data["reason"] for e in events if e.type is EventType.SESSION_ENDED]
    assert ended == ["stop"] * len(started)
