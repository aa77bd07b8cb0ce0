"""Word times for a scenario's recording: pocketsphinx forced alignment of a known transcript.

The `*.words.json` files beside the scenarios (format: docs/research.md, `words_json`) were
made this way: `pocketsphinx.Decoder.set_align_text` on the clip, 10 ms frames; the first
word's start and the last word's end of each window are clamped to the window's energy region
(`speech_region`), since the aligner stretches edge words over the silence around them. Each
WINDOW is `start:end:words...` in file seconds; the words must be in pocketsphinx's
dictionary. Prints the JSON (file times, every window's words in order) to stdout:

    python -m bargein.research.align FILE [--channel N] 'START:END:word word ...' ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bargein.research.audio import RATE, find_audio, read_channel, speech_region
from bargein.research.scenario import ScenarioError

FRAME_S = 0.01


def align(pcm_window: bytes, text: str) -> list[tuple[str, float, float]]:
    """(word, start, end) in seconds from the window's start; silences left out."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=RATE, loglevel="FATAL")
    decoder.set_align_text(text)
    decoder.start_utt()
    decoder.process_raw(pcm_window, full_utt=True)
    decoder.end_utt()
    out = []
    for seg in decoder.seg() or ():  # None when nothing aligned
        word = seg.word.split("(")[0]
        if word.startswith("<") or word.startswith("["):
            continue
        out.append((word, seg.start_frame * FRAME_S, (seg.end_frame + 1) * FRAME_S))
    spoken = [w for w in text.lower().split()]
    if [w for w, _, _ in out] != spoken:
        raise ValueError(f"alignment failed for {text!r}: got {[w for w, _, _ in out]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bargein.research.align",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, help="a recording (looked up as a scenario's file)")
    parser.add_argument("windows", nargs="+", metavar="START:END:WORDS",
                        help="file seconds and the words said between them")  # fmt: skip
    parser.add_argument("--channel", type=int, default=None, help="one channel (0 = left)")
    args = parser.parse_args(argv)
    try:
        pcm = read_channel(find_audio(str(args.file), None), args.channel)
    except ScenarioError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    words = []
    for window in args.windows:
        start_s, end_s, text = [*window.split(":", 2), "", ""][:3]
        try:
            a, b = round(float(start_s) * RATE), round(float(end_s) * RATE)
        except ValueError:
            parser.error(f"window {window!r} is not START:END:words (seconds, then the words)")
        b = min(b, len(pcm))  # an END past the file (lengths are quoted rounded) is its end
        if not text.strip() or not 0 <= a < b:
            parser.error(f"window {window!r}: needs words and 0 <= START < END, START inside "
                         f"the file ({len(pcm) / RATE:.2f} s)")  # fmt: skip
        try:
            found = align(pcm[a:b].tobytes(), text)
        except (ValueError, RuntimeError) as exc:
            parser.exit(2, f"{parser.prog}: error: window {window!r}: {exc} (words outside "
                        "pocketsphinx's dictionary, or a window cutting a word: widen it)\n")
        region = speech_region(pcm[a:b])
        if region is not None:  # the aligner stretches the edge words into the silence
            found[0] = (found[0][0], max(found[0][1], region[0]), found[0][2])
            found[-1] = (found[-1][0], found[-1][1], min(found[-1][2], region[1]))
        for word, ws, we in found:
            words.append({"word": word, "start_sec": round(a / RATE + ws, 2),
                          "end_sec": round(a / RATE + we, 2)})
    source = (f"pocketsphinx forced alignment (bargein.research.align, 10 ms frames) of "
              f"{args.file.name}" + (f" channel {args.channel}" if args.channel is not None
                                     else "") + ", windows " + ", ".join(
                  w.split(":", 2)[0] + "-" + w.split(":", 2)[1] for w in args.windows))
    json.dump({"source": source, "words": words}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
