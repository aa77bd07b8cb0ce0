"""`locate_in_wheel`: a file an installed distribution's RECORD lists, or the caller's error
saying what is missing and how to install it (the Smart Turn and speaker-encoder models)."""

from __future__ import annotations

import pytest

from bargein.wheel_files import locate_in_wheel


class Missing(RuntimeError):
    pass


def test_a_listed_file_is_found_where_it_is_installed() -> None:
    path = locate_in_wheel("numpy", "numpy/__init__.py", Missing, "numpy", "pip install numpy")
    assert path.is_file() and path.name == "__init__.py" and path.parent.name == "numpy"


def test_a_missing_distribution_or_file_raises_the_callers_error_saying_why() -> None:
    with pytest.raises(Missing, match=r"no-such-dist is not installed \(it ships a model\): do X"):
        locate_in_wheel("no-such-dist", "m.onnx", Missing, "a model", "do X")
    with pytest.raises(Missing, match=r"numpy \S+ has no numpy/no_such_model\.onnx"):
        locate_in_wheel("numpy", "numpy/no_such_model.onnx", Missing, "a model", "do X")
