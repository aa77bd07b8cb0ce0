"""`bargein bench dsp`'s arguments: a malformed value is a usage error naming it (exit 2), not
a traceback (seen: `--only echo` raised ValueError from the rate-pair parser)."""

from __future__ import annotations

import pytest

from bargein.benchmarks import dsp


@pytest.mark.parametrize(("argv", "named"), [
    (["--only", "echo"], "'echo'"), (["--only", "48000-x"], "'48000-x'"),
    (["--only", "48000-16000-8000"], "'48000-16000-8000'"),
    (["--sections", "echo,nonesuch"], "'nonesuch'"),
])
def test_malformed_arguments_are_usage_errors(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        dsp.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "bargein bench dsp: error:" in err and named in err
