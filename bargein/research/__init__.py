"""Interruption research harness: scenarios (TOML) with ground truth, run on the virtual clock,
measured against the truth. See docs/research.md."""

from bargein.research.experiment import resolve_scenarios, run_one
from bargein.research.metrics import Samples, compute
from bargein.research.policies import PRESETS, PolicySpec, preset, resolve_policy
from bargein.research.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "PRESETS",
    "PolicySpec",
    "Samples",
    "Scenario",
    "ScenarioError",
    "compute",
    "load_scenario",
    "parse_scenario",
    "preset",
    "resolve_policy",
    "resolve_scenarios",
    "run_one",
]
