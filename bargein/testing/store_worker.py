"""A worker of a multi-worker deployment for tests: the demo app on scripted engines, with a
store (``--store``), monitoring open on loopback, and a chat planner that streams its reply at a
steady pace (so a stream is still running when a test moves it to another worker).

    python -m bargein.testing.store_worker --store redis://127.0.0.1:PORT/0 --port 0

Voice replies: "Four." to anything, a long reply (many seconds of audio) to a text with "long"
in it, so a test can kill the worker mid-turn. Prints the same ready line as `bargein demo`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

import trio

from bargein.engines.base import Engines, PlanRequest
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.transports.access import AccessConfig
from bargein.transports.app import DemoServer
from bargein.transports.chat import ChatConfig
from bargein.transports.demo import serve_announced
from bargein.transports.protocol import OptionValue

CHAT_TOKENS = 40
CHAT_TOKENS_PER_SECOND = 20.0


def _reply(request: PlanRequest) -> str:
    last = request.messages[-1].content if request.messages else ""
    return "la " * 400 if "long" in last else "Four."


def engines(_: Mapping[str, OptionValue]) -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner(_reply), ScriptedTts(16000, ms_per_char=40.0))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="store_worker")
    parser.add_argument("--store", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-sessions", type=int, default=32)
    args = parser.parse_args(argv)
    from bargein.store import store_from_url

    chat = ScriptedPlanner(
        [" ".join(f"w{i}" for i in range(CHAT_TOKENS))], tokens_per_second=CHAT_TOKENS_PER_SECOND
    )
    server = DemoServer(
        engines,
        chat_planner=chat,
        chat_config=ChatConfig(heartbeat_interval=1.0),
        access=AccessConfig(monitoring=True),
        max_sessions=args.max_sessions,
        monitor_heartbeat=1.0,
        store=store_from_url(args.store),
    )
    server.sessions.max_sessions_per_client = 0

    trio.run(serve_announced, server, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
