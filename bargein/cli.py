"""The `bargein` command. Subcommands import their implementation lazily to keep start-up fast."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

BENCHMARKS = (
    "runtime", "dsp", "engines", "openai", "shutdown", "realtime", "telephony", "load", "scale",
)  # fmt: skip


class _KeepLinesFormatter(argparse.HelpFormatter):
    """Wraps text as usual, except a text of several lines (the preset list) stays as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text:
            return super()._fill_text(text, width, indent)
        return "".join(indent + line for line in text.splitlines(keepends=True))


def add_policy_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """`--policy NAME`: one preset of `bargein.presets` (default DEFAULT_PRESET), all of them
    listed with what they do at the end of `--help` (for `bargein run` and `bargein demo`)."""
    from bargein.presets import DEFAULT_PRESET, PRESETS

    parser.add_argument(
        "--policy",
        choices=list(PRESETS),
        default=DEFAULT_PRESET,
        metavar="NAME",
        help=f"{help} (default %(default)s; the presets are listed below)",
    )
    width = max(len(name) for name in PRESETS)
    lines = [f"  {name:<{width}}  {p.description}" for name, p in PRESETS.items()]
    presets = "interruption presets (--policy NAME, docs/presets.md):\n" + "\n".join(lines)
    parser.epilog = f"{parser.epilog}\n\n{presets}" if parser.epilog else presets
    parser.formatter_class = _KeepLinesFormatter


def _dispatch(module: str, argv: list[str]) -> int:
    main = importlib.import_module(module).main
    try:
        result: int = main(argv)
    except BrokenPipeError:
        # The reader went away (`bargein research list | head -1`): the output cannot be
        # written, status 1 as for any unwritable output, and no traceback. Later writes
        # (the interpreter's last flush) go to /dev/null instead of failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="bargein",
        description="A real-time voice-AI runtime on trio.",
        epilog="Run 'bargein COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="talk to the assistant from a WAV file", add_help=False)
    sub.add_parser("demo", help="serve the browser demo", add_help=False)
    sub.add_parser("serve", help="serve from N worker processes sharing a store", add_help=False)
    sub.add_parser("research", help="interruption experiments", add_help=False)
    bench = sub.add_parser("bench", help="benchmarks that print JSON figures")
    bench.add_argument("name", choices=BENCHMARKS)
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "bench":
        if not rest or rest[0] not in BENCHMARKS:
            parser.parse_args(args)  # prints usage and exits 2
        return _dispatch(f"bargein.benchmarks.{rest[0]}", rest[1:])
    modules = {
        "run": "bargein.run_file",
        "demo": "bargein.transports.demo",
        "serve": "bargein.transports.serve",
        "research": "bargein.research.cli",
    }
    if command not in modules:
        parser.parse_args(args)
        return 2
    return _dispatch(modules[command], rest)


if __name__ == "__main__":
    sys.exit(main())
