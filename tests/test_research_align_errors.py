"""`python -m bargein.research.align` on bad input: a clear message naming the window, exit 2,
no traceback (it is the tool docs/research.md sends scenario writers to)."""

from __future__ import annotations

import json

import pytest

from bargein.research.align import main

GO = "pocketsphinx_goforward.raw"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([GO, "0.5-2:go"], "window '0.5-2:go' is not START:END:words"),
        ([GO, "2:1:go"], "window '2:1:go': needs words and 0 <= START < END"),
        ([GO, "0:2.8:zzqxw"], "window '0:2.8:zzqxw': Failed to set up alignment"),
        ([GO, "1.2:1.3:go forward ten meters"], "window '1.2:1.3:go forward ten meters'"),
        (["nope.wav", "0:1:go"], "audio file 'nope.wav' not found"),
    ],
)
def test_bad_windows_and_files_are_named(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


def test_a_window_ending_past_the_file_aligns_to_its_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the audio README quotes the go-forward file as 2.8 s; it is 2.79 s long
    assert main([GO, "0:2.8:go forward ten meters"]) == 0
    words = json.loads(capsys.readouterr().out)["words"]
    assert [w["word"] for w in words] == ["go", "forward", "ten", "meters"]
