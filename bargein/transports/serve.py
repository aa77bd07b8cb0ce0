"""`bargein serve --workers N`: N `bargein demo` worker processes sharing one store.

Each worker is a full app (hypercorn on trio, one process, one core's worth of sessions) on its
own port — PORT, PORT+1, …, PORT+N-1 — so a reverse proxy (docs/deploy.md) spreads clients over
them with affinity, and a test or a health check can address each one. Every option this
command does not know is handed to every worker as it is (`bargein demo --help`).

The supervisor forwards the workers' stderr, restarts a worker that dies after it started (a
client of a dead worker reconnects through the proxy to another one and resumes from the store),
and stops them all on SIGINT/SIGTERM (SIGTERM each, SIGKILL after 10 s). A worker that fails
before it is serving (a store it cannot reach, a port in use) stops the whole command with that
worker's exit status: a deployment that cannot start should say so, not loop.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

_READY = re.compile(rb"bargein demo: open (http://\S+)/")
RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 10.0


def nginx_config(
    workers: Sequence[str],
    listen: str = "80",
    *,
    prefix: str | None = None,
) -> str:
    """An nginx.conf for `workers` ("HOST:PORT" each) behind one `listen` address
    (docs/deploy.md shows it and says why each line is there). `prefix`: a directory for the
    pid file and nginx's temp files (a test's own nginx); None leaves nginx's defaults."""
    paths = ""
    if prefix is not None:
        paths = "".join(
            f"    {name} {prefix}/{sub};\n"
            for name, sub in (
                ("client_body_temp_path", "body"),
                ("proxy_temp_path", "proxy"),
                ("fastcgi_temp_path", "fastcgi"),
                ("uwsgi_temp_path", "uwsgi"),
                ("scgi_temp_path", "scgi"),
            )
        )
    servers = "".join(f"        server {w} max_fails=1 fail_timeout=5s;\n" for w in workers)
    pid = f"pid {prefix}/nginx.pid;\n" if prefix is not None else ""
    return f"""{pid}events {{
    worker_connections 4096;
}}

http {{
    access_log off;
{paths}    # WebSocket upgrade: pass the client's Upgrade, and Connection: upgrade only with it.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream bargein {{
        # Affinity: a client comes back to the worker that holds its live session or stream
        # (a takeover or a local replay); when that worker is down nginx picks another, which
        # resumes from the store.
        hash $remote_addr consistent;
{servers}        keepalive 32;
    }}

    server {{
        listen {listen};

        # Sessions and streams last long: no proxy timeout cuts them (the app's own
        # heartbeats, 15 s on SSE, keep idle timers of other proxies happy).
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;
        proxy_http_version 1.1;
        proxy_next_upstream error timeout;
        # (A location that sets any proxy_set_header inherits none: each sets all it needs.
        # Host goes through as the client sent it: the app checks it, docs/web.md.)

        location = /ws {{
            proxy_pass http://bargein;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}

        location /v1/realtime {{
            proxy_pass http://bargein;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}

        location /api/ {{
            # SSE: every event goes out as it is written (the app also sends
            # X-Accel-Buffering: no); never gzip an event stream (gzip buffers).
            proxy_pass http://bargein;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_cache off;
            gzip off;
        }}

        location / {{
            proxy_pass http://bargein;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bargein serve",
        description="Serve the app from N worker processes that share a Redis/Valkey store, "
        "behind a reverse proxy (docs/deploy.md). Any other option is passed to every worker "
        "(see 'bargein demo --help').",
    )
    parser.add_argument(
        "--workers", type=int, default=2, metavar="N", help="worker processes (default 2)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="where the workers listen (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="worker i listens on PORT+i (default 8000; 0: each an ephemeral port)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="redis://HOST:PORT/DB shared by the workers (required with more than one worker)",
    )
    parser.add_argument(
        "--nginx-config",
        metavar="LISTEN",
        help="print an nginx.conf that listens on LISTEN (e.g. 80 or 127.0.0.1:8080) in front "
        "of these workers, and exit (docs/deploy.md)",
    )
    return parser


@dataclass
class Worker:
    index: int
    port: int
    process: trio.Process | None = None
    url: str | None = None
    starts: int = 0
    ready: trio.Event = field(default_factory=trio.Event)


def worker_command(args: argparse.Namespace, rest: Sequence[str], port: int) -> list[str]:
    command = [sys.executable, "-m", "bargein.cli", "demo", "--host", args.host]
    command += ["--port", str(port), *rest]
    if args.store:
        command += ["--store", args.store]
    return command


async def _run_worker(
    worker: Worker, command: list[str], failed: trio.MemorySendChannel[int]
) -> None:
    """Run one worker, restarting it whenever it dies after it was serving."""
    while True:
        worker.starts += 1
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        worker.process = process
        assert process.stderr is not None
        seen = bytearray()
        serving = False
        try:
            while chunk := await process.stderr.receive_some(65536):
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
                if not serving:
                    seen += chunk
                    match = _READY.search(seen)
                    if match:
                        serving = True
                        worker.url = match.group(1).decode()
                        print(
                            f"bargein serve: worker {worker.index} (pid {process.pid}) "
                            f"serving {worker.url}/",
                            file=sys.stderr,
                            flush=True,
                        )
                        worker.ready.set()
            status = await process.wait()
        finally:
            with trio.CancelScope(shield=True):
                await _stop(process)
        if not serving:
            await failed.send(status or 1)
            return
        print(
            f"bargein serve: worker {worker.index} exited ({status}); restarting it",
            file=sys.stderr,
            flush=True,
        )
        await trio.sleep(RESTART_DELAY_S)


async def _stop(process: trio.Process) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT_S):
            await process.wait()
    if process.poll() is None:
        process.kill()
        await process.wait()


async def supervise(args: argparse.Namespace, rest: Sequence[str]) -> int:
    workers = [Worker(i, 0 if args.port == 0 else args.port + i) for i in range(args.workers)]
    send, receive = trio.open_memory_channel[int](len(workers))
    status = 0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            for worker in workers:
                nursery.start_soon(
                    _run_worker, worker, worker_command(args, rest, worker.port), send
                )

            async def until_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

            async def until_failure() -> None:
                nonlocal status
                status = await receive.receive()
                print("bargein serve: a worker failed to start; stopping", file=sys.stderr)
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_signal)
            nursery.start_soon(until_failure)
    return status


def main(argv: list[str]) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.nginx_config is not None:
        if not args.port:
            parser.error("--nginx-config needs the workers' --port")
        ports = range(args.port, args.port + args.workers)
        print(nginx_config([f"{args.host}:{p}" for p in ports], args.nginx_config), end="")
        return 0
    if args.workers > 1 and not (args.store or "").startswith(("redis://", "rediss://", "unix://")):
        parser.error(
            "--workers > 1 needs --store redis://HOST:PORT/DB: workers share conversations, "
            "chat replay, monitoring and the session limit through it"
        )
    if args.port and not 0 < args.port + args.workers - 1 < 65536:
        parser.error("--port + --workers leaves the port range")
    return trio.run(supervise, args, rest)
