"""What a `/ws` session may ask for and what it gets: the engine options a client may choose,
the embedded engines per session, and the interruption preset (`policy`) of its config.

`DemoServer` (app.py) passes these to `SessionServer`; `session.started` lists them in its
`capabilities` (docs/protocol.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from bargein.engines.base import Engines, PlannerEngine
from bargein.presets import PRESETS, preset
from bargein.session import SessionConfig
from bargein.transports.protocol import OptionValue, SessionStart
from bargein.transports.protocol.fields import MAX_DESCRIPTION_CHARS
from bargein.transports.websocket import EnginesFactory, default_session_config

# Engine options a browser may choose (docs/web.md); everything else in `options` is ignored.
CLIENT_ENGINE_OPTIONS = frozenset({"voice", "rate_wpm", "pitch"})
# What `session.started` lists in `capabilities.options` (docs/protocol.md).
CLIENT_OPTIONS = {
    "voice": "espeak-ng voice, optionally +variant (bargein.engines.embedded.espeak_voices())",
    "rate_wpm": "speaking rate in words per minute (integer)",
    "pitch": "voice pitch 0-100 (integer)",
    "policy": "interruption preset, one of capabilities.policies (what each does: "
    "capabilities.policy_descriptions); an unknown name gets a non-fatal bad_field and the default",
}


def embedded_engines_factory(
    planner: Callable[[], PlannerEngine] | None = None, family: str | None = "light"
) -> EnginesFactory:
    """Engines per session from an embedded family (`bargein.engines.neural.engines_for`:
    "light", "neural", None for the default), with an optional other planner."""
    from bargein.engines.neural import engines_for

    default_engines = engines_for(family)

    def make(options: Mapping[str, OptionValue]) -> Engines:
        chosen = {k: v for k, v in options.items() if k in CLIENT_ENGINE_OPTIONS}
        engines = default_engines(**chosen)
        if planner is not None:
            engines = dataclasses.replace(engines, planner=planner())
        return engines

    return make


# `capabilities.policies` and `.policy_descriptions`: every preset (bargein.presets, in order).
POLICY_DESCRIPTIONS = {name: p.description[:MAX_DESCRIPTION_CHARS] for name, p in PRESETS.items()}


def policy_session_config(
    default: str | None = None,
) -> Callable[[SessionStart, str], SessionConfig]:
    """Session configs for `session.start`: the preset its `policy` option names, else the
    server's `default` preset (None: SessionConfig's own settings). A name not in the catalogue
    never gets here from `/ws` (`known_policy` told the client and dropped it); here it is
    ignored. Raises `ValueError` at once for an unknown `default`."""
    if default is not None:
        preset(default)

    def make(start: SessionStart, session_id: str) -> SessionConfig:
        config = default_session_config(start, session_id)
        asked = start.options.get("policy")
        name = asked if isinstance(asked, str) and asked in PRESETS else default
        return config if name is None else preset(name).apply(config)

    return make


session_config_with_policy = policy_session_config()
