"""Never-reading clients against a server process on loopback (issue 16): how long the server
holds a client that stops reading, and whether it counts it.

Each client connects (``--rcvbuf``: its SO_RCVBUF; default 0, the system's, which Linux
autotunes), starts a session, reads `session.started` and from then on never reads; it keeps
speaking (`goforward.raw` with 2.5 s of silence, looped, in real time) so the server keeps
answering into its window. Measured per client: seconds from its last read to the server's reset
of the connection (a send that fails); and the server's `slow_consumers` count from `/healthz`.
Alongside, ``--readers`` clients speak the same way and do read, at ``--reader-speed`` times the
rate of 16 kHz reply audio (answering pings, as RFC 6455 clients do): none may be closed.
Bounded by ``--max-seconds``. The server runs default `ConnectionLimits` (ping/pong liveness:
`ping_interval` 2 s, `pong_timeout` 7 s; write stalls: `stall_timeout` 5 s).

    python bench/slow_consumer.py --clients 4 --json
    python bench/slow_consumer.py --clients 4 --rcvbuf 4096 --json
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import trio
import wsproto
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)

from bargein.testing.audio import shared_audio_dir
from bargein.testing.server_process import ServerProcess, serve_in_process
from bargein.testing.web import http

RATE, FRAME = 16_000, 320


REPLY_BYTES_PER_S = 32_000  # 16 kHz PCM16, the reply audio of a 16 kHz session


async def _open(port: int, rcvbuf: int) -> tuple[trio.socket.SocketType, wsproto.WSConnection]:
    """Connect, upgrade, start a session and read `session.started`."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:  # before connect; a set SO_RCVBUF also stops the kernel growing it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.connect(("127.0.0.1", port))
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await sock.send(ws.send(Request(host=f"127.0.0.1:{port}", target="/ws")))
    while not any(isinstance(e, AcceptConnection) for e in ws.events()):
        ws.receive_data(await sock.recv(65536))
    start = {"type": "session.start", "v": 1, "sample_rate": RATE}
    await sock.send(ws.send(TextMessage(json.dumps(start))))
    while not any(isinstance(e, TextMessage) for e in ws.events()):  # session.started
        ws.receive_data(await sock.recv(65536))
    return sock, ws


async def never_reading(port: int, pcm: np.ndarray, bound: float, rcvbuf: int) -> float | None:
    """Seconds from the last read to the reset, or None if still open after `bound`."""
    sock, ws = await _open(port, rcvbuf)
    with sock:
        last_read = trio.current_time()
        frames = [
            ws.send(BytesMessage(pcm[i : i + FRAME].tobytes())) for i in range(0, len(pcm), FRAME)
        ]
        with trio.move_on_after(bound):
            try:
                i = 0
                while True:
                    await sock.send(frames[i % len(frames)])
                    i += 1
                    await trio.sleep_until(last_read + i * FRAME / RATE)
            except OSError:
                return round(trio.current_time() - last_read, 2)
    return None


async def reading(port: int, pcm: np.ndarray, done: trio.Event, speed: float) -> dict[str, Any]:
    """Speak like `never_reading`, but read at `speed` × the reply audio's byte rate, answering
    pings, until `done`; whether the server closed it, and how many pings it answered."""
    sock, ws = await _open(port, 0)
    began = trio.current_time()
    got = pings = 0
    closed = False
    with sock:
        frames = [
            ws.send(BytesMessage(pcm[i : i + FRAME].tobytes())) for i in range(0, len(pcm), FRAME)
        ]
        try:
            i = 0
            while not done.is_set() and not closed:
                await sock.send(frames[i % len(frames)])
                i += 1
                budget = int(speed * REPLY_BYTES_PER_S * (trio.current_time() - began)) - got
                if budget > 0:
                    with trio.move_on_after(FRAME / RATE):
                        data = await sock.recv(budget)
                        got += len(data)
                        closed = not data
                        ws.receive_data(data)
                        for event in ws.events():
                            if isinstance(event, Ping):
                                await sock.send(ws.send(event.response()))
                                pings += 1
                            closed = closed or isinstance(event, CloseConnection)
                await trio.sleep_until(began + i * FRAME / RATE)
        except OSError:
            closed = True
    return {"closed": closed, "pings_answered": pings, "bytes_read": got}


async def healthz(server: ServerProcess) -> dict[str, Any]:
    async with http(server.port) as client:
        await client.request("GET", "/healthz", headers={"Host": f"127.0.0.1:{server.port}"})
        while await client.item() is not None:
            pass
    body: dict[str, Any] = json.loads(client.body)
    return body


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raw = (shared_audio_dir() / "pocketsphinx_goforward.raw").read_bytes()
    speech = np.frombuffer(raw, "<i2").astype(np.int16)
    pcm = np.concatenate([speech, np.zeros(RATE * 5 // 2, np.int16)])
    started = time.perf_counter()
    async with serve_in_process(
        ["-m", "bargein.benchmarks.load", "--serve", args.engines]
    ) as server:
        held: list[float | None] = [None] * args.clients
        readers: list[dict[str, Any]] = []
        done = trio.Event()

        async def one(i: int) -> None:
            held[i] = await never_reading(server.port, pcm, args.max_seconds, args.rcvbuf)

        async def reader() -> None:
            readers.append(await reading(server.port, pcm, done, args.reader_speed))

        async with trio.open_nursery() as nursery:
            for _ in range(args.readers):
                nursery.start_soon(reader)
            async with trio.open_nursery() as never:
                for i in range(args.clients):
                    never.start_soon(one, i)
            # The readers go on a little after the last reset, and at least --reader-seconds.
            await trio.sleep(max(2.0, args.reader_seconds - (time.perf_counter() - started)))
            done.set()
        await trio.sleep(1)
        stats = (await healthz(server))["server"]
    closed = [h for h in held if h is not None]
    return {
        "engines": args.engines,
        "clients": args.clients,
        "rcvbuf": args.rcvbuf or "system default",
        "closed": len(closed),
        "held_s": held,
        "held_max_s": max(closed) if closed else None,
        "slow_consumers": stats["slow_consumers"],
        "readers": args.readers,
        "reader_speed": args.reader_speed,
        "readers_closed": sum(r["closed"] for r in readers),
        "reader_pings_answered": [r["pings_answered"] for r in readers],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/slow_consumer.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--engines", choices=("scripted", "embedded"), default="scripted")
    parser.add_argument(
        "--rcvbuf", type=int, default=0, help="client SO_RCVBUF bytes (0: the system's, autotuned)"
    )
    parser.add_argument(
        "--readers", type=int, default=2, help="clients that read, slowly, beside them"
    )
    parser.add_argument(
        "--reader-speed",
        type=float,
        default=0.5,
        help="readers read this fraction of 16 kHz reply audio's byte rate",
    )
    parser.add_argument(
        "--reader-seconds", type=float, default=0.0, help="readers run this long at least"
    )
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = trio.run(run, args)
    report["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]  # at the end of the run
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
