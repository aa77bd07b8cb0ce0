"""Fuzz a running bargein server over real sockets; print JSON counts.

    python bench/fuzz_ws.py [--frames 100000] [--time-limit 600] [--connections 6] [--seed 1]
                            [--endpoint ws|realtime|twilio|telnyx|all]

Starts `bargein demo --engines light --monitoring` as a child process on 127.0.0.1 (an ephemeral
port; its stderr captured), opens a monitoring stream, then runs `--connections` concurrent
WebSocket clients that send odd frames until `--frames` were sent or the time limit passed:
junk text and JSON, message-shaped JSON with wrong types, lone-surrogate escapes and non-BMP
text, `session.start` with odd options (long espeak voice variants, huge numbers, control
characters), any bytes as audio, valid audio and text in between; connections end normally,
abruptly (TCP dropped without a close handshake) or by the server. Afterwards a normal session
must get a spoken reply. Counts: frames sent, error frames by code, close codes, server
tracebacks in its stderr (must be 0), crashes (must be 0), the monitoring stream still open,
the server's open fds before and after, and its `/healthz` counters. `--endpoint` (default
`ws`) fuzzes `/v1/realtime` or a telephony route instead (bench/fuzz_endpoints.py), or all four
(each connection picks one); realtime `server_error` events (an event that reached a path its
parser should have refused) must be 0 as well.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bargein.transports.protocol import ClientProtocol, SessionStart
from bench.fuzz_endpoints import endpoint_connection
from bench.fuzz_ws_frames import good_frame, junk_frame, session_start

_URL = re.compile(rb"open http://127\.0\.0\.1:(\d+)/")
class Stats:
    def __init__(self) -> None:
        self.frames = 0
        self.received = 0
        self.errors: Counter[str] = Counter()
        self.fatal: Counter[str] = Counter()
        self.close_codes: Counter[str] = Counter()
        self.endings: Counter[str] = Counter()
        self.connections = 0
        self.connect_failures = 0


async def open_ws(
    port: int, nursery: trio.Nursery
) -> tuple[trio.SocketStream, WebSocketConnection]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    ws = await wrap_client_stream(
        nursery, stream, f"127.0.0.1:{port}", "/ws", message_queue_size=64
    )
    return stream, ws


async def one_connection(port: int, rng: random.Random, stats: Stats, budget: int) -> None:
    async with trio.open_nursery() as nursery:
        stream, ws = await open_ws(port, nursery)
        stats.connections += 1

        async def read() -> None:
            codec = ClientProtocol()
            codec.started = True  # decode what arrives; order is the server's business here
            try:
                while True:
                    frame = await ws.get_message()
                    stats.received += 1
                    if isinstance(frame, str) and '"type":"error"' in frame:
                        obj = json.loads(frame)
                        stats.errors[obj["code"]] += 1
                        if obj["fatal"]:
                            stats.fatal[obj["code"]] += 1
            except ConnectionClosed:
                pass

        nursery.start_soon(read)
        handshake = rng.random() < 0.3
        frames: list[str | bytes] = []
        if handshake:
            frames += [junk_frame(rng) for _ in range(rng.randint(0, 20))]
            frames.append(session_start(rng, valid=False))
        else:
            frames.append(session_start(rng, valid=rng.random() < 0.6))
        # Some connections are mostly junk (and end in too_many_errors), some mostly good
        # input with junk in between (long sessions that talk).
        share = rng.choice([1.0, 0.3, 0.05, 0.01])
        frames += [
            junk_frame(rng) if rng.random() < share else good_frame(rng)
            for _ in range(min(budget, rng.randint(50, 3000)))
        ]
        try:
            for frame in frames:
                await ws.send_message(frame)
                stats.frames += 1
                if rng.random() < 0.002:
                    await trio.sleep(0.5)  # let a reply get going
        except ConnectionClosed:
            stats.endings["closed_by_server"] += 1
            stats.close_codes[str(ws.closed.code if ws.closed else None)] += 1
            nursery.cancel_scope.cancel()
            return
        ending = rng.choice(["normal", "abrupt", "abrupt", "wait"])
        stats.endings[ending] += 1
        if ending == "normal":
            with trio.move_on_after(5):
                await ws.aclose()
        elif ending == "abrupt":
            await stream.aclose()  # no close handshake: the TCP connection just goes
        else:
            with trio.move_on_after(2):
                await ws.get_message()
            with trio.move_on_after(5):
                await ws.aclose()
        if ws.closed is not None and ending != "abrupt":
            stats.close_codes[str(ws.closed.code)] += 1
        nursery.cancel_scope.cancel()


async def monitor(port: int, state: dict[str, Any]) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    request = f"GET /api/monitoring/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    await stream.send_all(request.encode())
    state["open"] = True
    try:
        while data := await stream.receive_some(65536):
            state["events"] += data.count(b"\nevent: ") + data.startswith(b"event: ")
    finally:
        state["open"] = False


async def http_json(port: int, path: str) -> Any:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    await stream.send_all(request.encode())
    data = b""
    with trio.move_on_after(10):
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            if not (chunk := await stream.receive_some(65536)):
                break
            data += chunk
    await stream.aclose()
    return json.loads(data.split(b"\r\n\r\n", 1)[1] or b"null")


def _length(data: bytes) -> int:
    found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", data)
    return int(found.group(1)) if found else 1 << 30


async def normal_session(port: int) -> bool:
    codec = ClientProtocol()
    async with trio.open_nursery() as nursery:
        _, ws = await open_ws(port, nursery)
        await ws.send_message(codec.send(SessionStart(16000)))
        await ws.send_message('{"type":"text","v":1,"text":"what is two plus two"}')
        audio = 0
        with trio.move_on_after(60):
            while True:
                frame = await ws.get_message()
                if isinstance(frame, bytes):
                    audio += 1
                elif '"type":"turn.ended"' in frame:
                    ended = json.loads(frame)
                    await ws.aclose()
                    nursery.cancel_scope.cancel()
                    return bool(ended["status"] == "completed" and ended["heard"] and audio)
        nursery.cancel_scope.cancel()
    return False


_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
               "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
               "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}  # fmt: skip


def tcp_states(pid: int, port: int) -> dict[str, int]:
    """States of the sockets on the server's port (its side), from the kernel's table."""
    states: Counter[str] = Counter()
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        try:
            with open(table) as lines:
                rows = list(lines)[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if int(local.rsplit(":", 1)[1], 16) == port:
                states[_TCP_STATES.get(state, state)] += 1
    return dict(states)


def fd_count(pid: int) -> dict[str, int] | None:
    """The server's open fds by kind (socket, pipe, anon_inode, file)."""
    kinds: Counter[str] = Counter()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            kinds[target.split(":")[0] if ":" in target else "file"] += 1
    except OSError:
        return None
    return dict(kinds)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "bargein.cli", "demo", "--engines", "light", "--monitoring",
               "--host", "127.0.0.1", "--port", "0"]  # fmt: skip
    log = bytearray()
    stats = Stats()
    out: dict[str, Any] = {}
    process = await trio.lowlevel.open_process(command, stderr=-1)  # -1: subprocess.PIPE
    assert process.stderr is not None
    try:
        async with trio.open_nursery() as nursery:

            async def collect() -> None:
                assert process.stderr is not None
                async for chunk in process.stderr:
                    log.extend(chunk)

            nursery.start_soon(collect)
            with trio.fail_after(120):
                while not (found := _URL.search(log)):
                    if process.poll() is not None:
                        raise RuntimeError(f"server did not start: {log.decode(errors='replace')}")
                    await trio.sleep(0.1)
            port = int(found.group(1))
            watch = {"open": False, "events": 0}
            nursery.start_soon(monitor, port, watch)
            await trio.sleep(0.5)
            out["server_fds_before"] = fd_count(process.pid)
            rng = random.Random(args.seed)
            started = time.monotonic()
            with trio.move_on_after(args.time_limit):
                async with trio.open_nursery() as workers:
                    for _ in range(args.connections):
                        workers.start_soon(worker, port, random.Random(rng.random()), stats, args)
            elapsed = time.monotonic() - started
            await trio.sleep(3)  # sessions of abruptly closed connections end
            out["normal_session_ok"] = process.poll() is None and await normal_session(port)
            health = None
            with trio.move_on_after(30):  # every handler done (drains are bounded at 10 s)
                while process.poll() is None:
                    health = await http_json(port, "/healthz")
                    if not health["server"]["connections_open"]:
                        break
                    await trio.sleep(0.5)
            await trio.sleep(0.5)
            out["server_fds_after"] = fd_count(process.pid)
            out["server_tcp_after"] = tcp_states(process.pid, port)
            out["monitor_open_after"] = watch["open"]
            out["monitor_events"] = watch["events"]
            crashed = process.poll() is not None
            if not crashed:
                process.send_signal(signal.SIGTERM)
            with trio.move_on_after(15):
                await process.wait()
            if process.poll() is None:
                process.kill()
                await process.wait()
            nursery.cancel_scope.cancel()
    finally:
        if process.poll() is None:  # the run itself failed: leave no server behind
            process.kill()
    text = log.decode(errors="replace")
    out.update(
        frames=stats.frames,
        elapsed_s=round(elapsed, 1),
        frames_per_s=round(stats.frames / max(elapsed, 1e-9)),
        connections=stats.connections,
        frames_received=stats.received,
        errors_by_code=dict(stats.errors.most_common()),
        fatal_by_code=dict(stats.fatal.most_common()),
        close_codes=dict(stats.close_codes.most_common()),
        endings=dict(stats.endings),
        server_tracebacks=text.count("Traceback (most recent call last)"),
        server_error_lines=sum(1 for line in text.splitlines() if line.startswith("ERROR")),
        crashes=int(crashed),
        server_exit_code=process.returncode,
        healthz_server=health.get("server") if isinstance(health, dict) else None,
    )
    if out["server_tracebacks"] or out["server_error_lines"]:
        await trio.Path(args.log).write_text(text)
        out["server_log"] = args.log
    return out


ENDPOINTS = ["ws", "realtime", "twilio", "telnyx"]


async def worker(port: int, rng: random.Random, stats: Stats, args: argparse.Namespace) -> None:
    while stats.frames < args.frames:
        endpoint = rng.choice(ENDPOINTS) if args.endpoint == "all" else args.endpoint
        budget = args.frames - stats.frames
        try:
            with trio.move_on_after(60) as stuck:  # no connection may hang the run
                if endpoint == "ws":
                    await one_connection(port, rng, stats, budget)
                else:
                    await endpoint_connection(port, endpoint, rng, stats, budget)
            if stuck.cancelled_caught:
                stats.endings["client_stuck_60s"] += 1
        except (OSError, ConnectionClosed, trio.BrokenResourceError):
            stats.connect_failures += 1
            await trio.sleep(0.1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--connections", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log", default="/tmp/bargein-fuzz-server.log")
    parser.add_argument("--endpoint", choices=[*ENDPOINTS, "all"], default="ws")
    args = parser.parse_args(argv)
    result = trio.run(run, args)
    print(json.dumps(result, indent=2))
    our_bugs = result["errors_by_code"].get("realtime:server_error", 0)
    ok = not result["server_tracebacks"] and not result["crashes"] and not our_bugs
    ok = ok and result["normal_session_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
