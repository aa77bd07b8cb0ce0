"""Policies under test: an `InterruptionPolicy` plus a `VadConfig`, with named presets, and
outside overlap judges loaded by dotted path or file (`mypkg.mod:MyPolicy`, `my.py:MyPolicy`).

A policy table (in a scenario's `[policy]`, or a TOML file given to `--policy`) names a preset
and overrides its fields; `vad` is a sub-table of `VadConfig` fields; `judge` names an
`OverlapJudge` (with `judge_options` passed to its constructor).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_type_hints

from bargein.actors.policy import InterruptionPolicy, OverlapJudge
from bargein.actors.vad import VadConfig
from bargein.presets import PRESETS as CATALOGUE
from bargein.presets import preset as runtime_preset
from bargein.session_config import SessionConfig


@dataclass(frozen=True, slots=True)
class PolicySpec:
    name: str
    policy: InterruptionPolicy = field(default_factory=InterruptionPolicy)
    vad: VadConfig = field(default_factory=VadConfig)
    description: str = ""
    # SessionConfig field overrides (e.g. the echo canceller) the preset brings.
    session: dict[str, Any] = field(default_factory=dict)

    judge_spec: str | None = None  # where the outside judge came from ("mod:Class")
    # A fresh judge per run, so a judge with state cannot carry it from one run to the next.
    judge_factory: Callable[[], OverlapJudge] | None = None

    def for_session(self) -> InterruptionPolicy:
        """The policy for one session (with a new judge, if any)."""
        if self.judge_factory is None:
            return self.policy
        return dataclasses.replace(self.policy, judge=self.judge_factory())

    def to_json(self) -> dict[str, Any]:
        p = {f.name: getattr(self.policy, f.name) for f in dataclasses.fields(self.policy)}
        for key, value in p.items():  # word sets (backchannels, interrupt_phrases): JSON lists
            if isinstance(value, frozenset | set):
                p[key] = sorted(value)
        p["judge"] = self.judge_spec
        return {
            "name": self.name,
            "policy": p,
            "vad": dataclasses.asdict(self.vad),
            "session": dict(self.session),
        }


# The catalogue is the runtime's (bargein.presets); research names the same presets.
PRESETS = CATALOGUE

_POLICY_FIELDS = set(InterruptionPolicy.__dataclass_fields__) | {"judge_options"}
_VAD_FIELDS = set(VadConfig.__dataclass_fields__)
# InterruptionPolicy fields that hold a set of words or phrases (given as TOML lists).
_WORD_SETS = {
    f.name for f in dataclasses.fields(InterruptionPolicy) if isinstance(f.default, frozenset)
}
# SessionConfig fields a policy table may set (`session = {...}`): the echo canceller and any
# other field a preset sets; the harness owns the rest (engines, clock, VAD and policy).
_SESSION_FIELDS = {"echo_cancel"} | {k for p in CATALOGUE.values() for k in p.session}


def preset(name: str) -> PolicySpec:
    if name not in PRESETS:
        raise ValueError(f"unknown policy preset {name!r}; presets: {', '.join(PRESETS)}")
    p = runtime_preset(name)
    return PolicySpec(name, p.interruption_policy(), p.vad_config(), p.description, p.session)


def _typed(cls: type, values: dict[str, Any], section: str) -> dict[str, Any]:
    """`values` checked against `cls`'s bool, int and float field types (numbers made float
    where the field is), so a wrong type names its field instead of failing later in a
    comparison, or running; the fields' own checks (modes, ranges) follow."""
    hints = get_type_hints(cls)
    out = dict(values)
    for key, value in values.items():
        hint = hints[key]
        want = f"{section} field {key} must be"
        if hint is bool and not isinstance(value, bool):
            raise ValueError(f"{want} true or false, got {value!r}")
        if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{want} an integer, got {value!r}")
        if hint is float or float in get_args(hint):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{want} a number, got {value!r}")
            out[key] = float(value)
    return out


def policy_from_table(
    table: dict[str, Any], *, name: str = "custom", base_dir: Path | None = None
) -> PolicySpec:
    """`{preset = "confirm", min_words = 2, vad = {stop_ms = 600}}` → a PolicySpec. Without a
    preset the runtime defaults are the base."""
    table = dict(table)
    base_name = table.pop("preset", None)
    vad_over = table.pop("vad", {})
    if not isinstance(vad_over, dict):
        raise ValueError("vad must be a table of VadConfig fields")
    session_over = table.pop("session", {})
    if not isinstance(session_over, dict):
        raise ValueError("session must be a table of SessionConfig fields")
    unknown = sorted(set(session_over) - _SESSION_FIELDS)
    if unknown:
        raise ValueError(f"unknown session fields {unknown}; allowed: {sorted(_SESSION_FIELDS)}")
    unknown = sorted(set(table) - _POLICY_FIELDS)
    if unknown:
        raise ValueError(f"unknown policy fields {unknown}; allowed: {sorted(_POLICY_FIELDS)}")
    unknown = sorted(set(vad_over) - _VAD_FIELDS)
    if unknown:
        raise ValueError(f"unknown vad fields {unknown}; allowed: {sorted(_VAD_FIELDS)}")
    for key in sorted(set(table) & _WORD_SETS):  # lexicons: TOML lists of words or phrases
        words = table[key]
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError(f"{key} must be a list of words or phrases")
        table[key] = frozenset(w.lower() for w in words)
    options = table.pop("judge_options", {})
    judge_spec = table.get("judge")
    factory = None
    if judge_spec is not None:
        if not isinstance(judge_spec, str):
            raise ValueError('judge must be a "module:Class" or "file.py:Class" string')
        factory = load_judge(judge_spec, options, base_dir=base_dir)
        table["judge"] = factory()
    elif options:
        raise ValueError("judge_options needs judge")
    base = preset(base_name) if base_name is not None else PolicySpec("default")
    table = _typed(InterruptionPolicy, table, "policy")
    vad_over = _typed(VadConfig, vad_over, "vad")
    session_over = _typed(SessionConfig, session_over, "session")
    session = {**base.session, **session_over}
    try:
        policy = dataclasses.replace(base.policy, **table)
        vad = dataclasses.replace(base.vad, **vad_over)
        SessionConfig(vad=vad, policy=policy, **session)  # its own checks, now not mid-run
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    if not table and not vad_over and not session_over and base_name is not None:
        return base
    return PolicySpec(
        name,
        policy,
        vad,
        session=session,
        judge_spec=judge_spec or base.judge_spec,
        judge_factory=factory or base.judge_factory,
    )


def load_judge(
    spec: str, options: Any = None, *, base_dir: Path | None = None
) -> Callable[[], OverlapJudge]:
    """A maker of judges from `pkg.mod:Name` (importable) or `path/to/file.py:Name` (relative
    to `base_dir`, the scenario's folder, when the file is there, else to the working
    directory): a class is instantiated with `options` as keyword arguments for each run; a
    ready object (no options) is shared."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr.isidentifier():
        raise ValueError(f'judge {spec!r} must look like "pkg.mod:Class" or "file.py:Class"')
    if not isinstance(options, dict):
        raise ValueError("judge_options must be a table")
    options = options or {}
    if target.endswith(".py"):
        path = Path(target).expanduser()  # `a,~/x.py:C`: the shell expands no `~` after a comma
        if base_dir is not None and not path.is_absolute() and (base_dir / path).is_file():
            path = base_dir / path
        path = path.resolve()
        if not path.is_file():
            raise ValueError(f"judge {spec!r}: no such file {path}")
        # A name per file, so two policy files with the same stem do not collide.
        name = f"bargein_judge_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ValueError(f"judge {spec!r}: cannot import {target!r} ({exc})") from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise ValueError(f"judge {spec!r}: {target} has no {attr!r}")
    if options and not isinstance(obj, type):
        raise ValueError(f"judge {spec!r} is an object, not a class: judge_options do not apply")

    def make() -> OverlapJudge:
        judge = obj(**options) if isinstance(obj, type) else obj
        if not isinstance(judge, OverlapJudge):
            raise ValueError(f"judge {spec!r} does not implement OverlapJudge (judge, deadline)")
        return judge

    try:
        make()  # fail now, with the reason, rather than inside a run
    except TypeError as exc:
        raise ValueError(f"judge {spec!r}: {exc}") from None
    return make


def resolve_policy(name_or_path: str) -> PolicySpec:
    """A preset name, a TOML file whose `[policy]` table is a policy (named after the file), or
    an outside judge `pkg.mod:Class` / `file.py:Class` (named after the class)."""
    if name_or_path in PRESETS:
        return preset(name_or_path)
    if ":" in name_or_path and not name_or_path.endswith(".toml"):
        return policy_from_table({"judge": name_or_path}, name=name_or_path.rpartition(":")[2])
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" and path.is_file():
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        table = raw.get("policy", raw)
        if isinstance(table, str):
            table = {"judge": table}
        return policy_from_table(table, name=path.stem)
    raise ValueError(
        f"unknown policy {name_or_path!r}: not a preset ({', '.join(PRESETS)}), a .toml file "
        'nor a judge "pkg.mod:Class" / "file.py:Class"'
    )
