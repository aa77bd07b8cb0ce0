"""The `bargein demo` command: options → `DemoServer` → serve until SIGINT/SIGTERM.

Start-up refusals are one line on stderr (a port in use, exit status 1) or a usage error (an
access setup that would expose the monitoring stream, exit status 2); docs/web.md lists them.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, NoReturn

import trio

from bargein.cli import add_policy_argument
from bargein.dsp import warm_up
from bargein.dsp.echo import warm_up_echo
from bargein.engines.base import PlannerEngine
from bargein.store import StoreUnavailable, store_from_url
from bargein.transports.access import AccessConfig, AccessPolicy
from bargein.transports.app import DemoServer, embedded_engines_factory

# A model may think quietly for a while mid-reply; the chat stream's 15 s heartbeat keeps the
# connection alive meanwhile, so the two are deliberately independent.
DEFAULT_LLM_STALL_TIMEOUT = 60.0


def openai_planner(
    base_url: str,
    model: str | None,
    api_key: str | None,
    stall_timeout: float = DEFAULT_LLM_STALL_TIMEOUT,
) -> PlannerEngine:
    from bargein.engines.openai_compat import OpenAIPlanner

    kwargs: dict[str, Any] = {
        "base_url": base_url,
        "api_key": api_key or "unused",
        "stall_timeout": stall_timeout,
    }
    if model:
        kwargs["model"] = model
    return OpenAIPlanner(**kwargs)


async def serve_announced(
    server: DemoServer,
    host: str,
    port: int,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    hint: str = "",
) -> None:
    """Serve `server`; once it listens, print `bargein demo: open URL/` (then `hint`) on stderr:
    the line a person opens, and the one a parent process (a test, a benchmark) reads the port
    from (`bargein.testing.server_process`)."""
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            lambda task_status: server.serve(
                host, port, shutdown_trigger=shutdown_trigger, task_status=task_status
            )
        )
        print(f"bargein demo: open {urls[0]}/{hint}", file=sys.stderr, flush=True)


async def _until_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bargein demo", description="Serve the browser demo: talk to it, interrupt it."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--engines",
        choices=("light", "neural"),
        help="engine family (default neural when the 'neural' extra is installed, else light)",
    )
    parser.add_argument("--llm-base-url", help="an OpenAI-compatible endpoint for the planner")
    parser.add_argument("--llm-model", help="model name at --llm-base-url")
    parser.add_argument(
        "--llm-api-key", default=os.environ.get("OPENAI_API_KEY"), help="(default $OPENAI_API_KEY)"
    )
    parser.add_argument(
        "--llm-stall-timeout",
        type=_positive,
        default=DEFAULT_LLM_STALL_TIMEOUT,
        metavar="SECONDS",
        help="fail a reply when the model sends nothing for this long mid-stream "
        f"(default {DEFAULT_LLM_STALL_TIMEOUT:g})",
    )
    parser.add_argument(
        "--token",
        help="require this bearer token on /ws and /api/* (default $BARGEIN_TOKEN)",
        default=os.environ.get("BARGEIN_TOKEN"),
    )
    parser.add_argument("--monitoring", action="store_true", help="serve /api/monitoring/stream")
    parser.add_argument(
        "--operator-token",
        default=os.environ.get("BARGEIN_OPERATOR_TOKEN"),
        help="the token for the monitoring stream (default $BARGEIN_OPERATOR_TOKEN, else --token)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests whose Host is NAME (repeatable; * for any)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept this Origin, e.g. https://app.example (repeatable; * for any)",
    )
    parser.add_argument("--max-sessions", type=int, default=32)
    parser.add_argument(
        "--store",
        metavar="URL",
        help="share conversations, chat replay, monitoring and the --max-sessions limit with "
        "other workers through Redis/Valkey, e.g. redis://127.0.0.1:6379/0 (docs/deploy.md); "
        "default: this process's memory",
    )
    add_policy_argument(parser, "interruption preset of sessions (/ws, calls) that name none")
    return parser


def server_from_args(args: argparse.Namespace) -> DemoServer:
    planner_factory: Callable[[], PlannerEngine] | None = None
    if args.llm_base_url:
        base_url, model, key = args.llm_base_url, args.llm_model, args.llm_api_key
        stall = args.llm_stall_timeout

        def planner_factory() -> PlannerEngine:
            return openai_planner(base_url, model, key, stall)

    access = AccessConfig(
        token=args.token,
        operator_token=args.operator_token,
        monitoring=args.monitoring,
        allow_hosts=tuple(args.allow_host),
        allow_origins=tuple(args.allow_origin),
    )
    return DemoServer(
        embedded_engines_factory(planner_factory, args.engines),
        access=access,
        max_sessions=args.max_sessions,
        policy=args.policy,
        store=store_from_url(args.store),
    )


def _fail(message: str) -> NoReturn:
    print(f"bargein demo: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    # Nothing was served, so nothing needs cleaning up; a normal interpreter exit could abort
    # ("terminate called ...", status -6) while the neural models still load in their daemon
    # thread, which would turn a one-line refusal into a crash.
    os._exit(1)


def _leaf(group: BaseExceptionGroup[StoreUnavailable]) -> BaseException:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


def _first_oserror(group: BaseExceptionGroup[OSError]) -> OSError:
    # trio and hypercorn wrap the bind failure in (nested) exception groups.
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert isinstance(leaf, OSError)
    return leaf


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        server = server_from_args(args)
        AccessPolicy(server.access, args.host)  # refuse a bad access setup before warming up
    except (ValueError, RuntimeError) as exc:  # RuntimeError: --engines neural not installed
        parser.error(str(exc))
    # Compile/load the DSP kernels now, not inside the first caller's audio: a client may pick
    # any preset, the echo canceller's and the duck's included.
    warm_up()
    warm_up_echo()

    try:
        trio.run(
            partial(
                serve_announced, server, args.host, args.port,
                shutdown_trigger=_until_signal, hint=" (Ctrl+C to stop)",
            )
        )
    except* StoreUnavailable as group:
        _fail(str(_leaf(group)))  # "cannot reach the store at redis://...: <reason>"
    except* OSError as group:
        error = _first_oserror(group)
        if error.errno == errno.EADDRINUSE:
            _fail(f"port {args.port} on {args.host} is already in use")
        _fail(f"cannot serve on {args.host}:{args.port}: {error.strerror or error}")
    return 0
