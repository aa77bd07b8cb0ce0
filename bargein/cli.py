"""The `bargein` command. Subcommands import their implementation lazily to keep start-up fast."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

BENCHMARKS = ("runtime", "dsp", "engines", "openai", "shutdown", "realtime", "telephony", "load")


def _dispatch(module: str, argv: list[str]) -> int:
    main = importlib.import_module(module).main
    result: int = main(argv)
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
        "research": "bargein.research.cli",
    }
    if command not in modules:
        parser.parse_args(args)
        return 2
    return _dispatch(modules[command], rest)


if __name__ == "__main__":
    sys.exit(main())
