"""What our OpenAI-compatible plumbing adds on top of the model: `bargein bench openai [--json]`.

A real session (floor, turn, planner and TTS actors, egress) runs `OpenAIPlanner` and
`OpenAITTS` against the local OpenAI-compatible server over 127.0.0.1, the server answering at
zero delay, so every millisecond measured is ours (SDK, httpx2, loopback, actors) and none is a
model's. Per typed user turn, from the end-of-turn decision (`turn_started`):

- `request_out`: until the server has received the whole chat completion request;
- `first_token`: until the planner actor saw the first token (`llm_first_token`);
- `first_audio`: until the first audio frame went to the transport (`audio_out_first`).

Then, for barge-ins on a reply still streaming: `barge_in_close`, from the floor's `barge_in`
decision until the server observed the client closing the HTTP stream.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any

import numpy as np
import trio

from bargein.engines.base import Engines
from bargein.engines.openai_compat import OpenAIPlanner, OpenAITTS
from bargein.runtime.events import Event, EventType
from bargein.session import SessionConfig, open_session
from bargein.stats import nearest_rank
from bargein.testing.memory import MemoryTransport
from bargein.testing.openai_server import ChatReply, OpenAIServer, ServerConfig, serve_openai
from bargein.testing.scripted import ScriptedStt, ScriptedTts

REPLY = "Sure. Here is a short answer for you."
STORY = (
    "Once upon a time there was a small robot. It lived in a quiet town by the sea. "
    "Every morning it walked to the harbour to count the boats."
)
HANG_GUARD = 60.0  # per turn; a hang guard, not a measurement bound


def _stats(values_s: list[float]) -> dict[str, float | int]:
    ms = np.asarray(values_s) * 1000
    if not len(ms):
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(nearest_rank(ms.tolist(), 50), 3),
        "p99_ms": round(nearest_rank(ms.tolist(), 99), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "max_ms": round(float(ms.max()), 3),
    }


class _Recorder:
    """Event times per turn, and a way to wait for one."""

    def __init__(self) -> None:
        self.times: dict[tuple[int, EventType], float] = {}
        self._changed = trio.Event()

    def __call__(self, event: Event) -> None:
        if event.turn is not None:
            self.times.setdefault((event.turn, event.type), event.t)
            self._changed.set()
            self._changed = trio.Event()

    async def wait(self, turn: int, *types: EventType) -> float:
        while True:
            for kind in types:
                if (turn, kind) in self.times:
                    return self.times[(turn, kind)]
            await self._changed.wait()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # Zero-delay answers; speech is short so real-time playout does not dominate the run.
    config = ServerConfig(default_chat=ChatReply(REPLY), speech_seconds_per_char=0.004)
    request_out: list[float] = []
    first_token: list[float] = []
    first_audio: list[float] = []
    barge_close: list[float] = []
    async with trio.open_nursery() as nursery:
        server: OpenAIServer = await nursery.start(serve_openai, config)
        planner = OpenAIPlanner(base_url=server.url, model="bench")
        tts: OpenAITTS | ScriptedTts = (
            OpenAITTS(base_url=server.url) if args.tts == "openai" else ScriptedTts(24000)
        )
        engines = Engines(stt=ScriptedStt(), planner=planner, tts=tts)
        recorder = _Recorder()
        transport = MemoryTransport(keep_events=False)
        async with open_session(SessionConfig(), engines, transport) as session:
            session.bus.add_listener(recorder)
            turn = 0
            for i in range(args.warmup + args.turns):
                turn += 1
                seen = len(server.chat_requests())
                with trio.fail_after(HANG_GUARD):
                    session.push_text(f"Question number {i}?")
                    started = await recorder.wait(turn, EventType.TURN_STARTED)
                    await recorder.wait(turn, EventType.TURN_COMPLETED, EventType.TURN_CANCELLED)
                if i < args.warmup:
                    continue
                received = server.chat_requests()[seen].received_at - session.bus.t0
                request_out.append(received - started)
                first_token.append(recorder.times[(turn, EventType.LLM_FIRST_TOKEN)] - started)
                first_audio.append(recorder.times[(turn, EventType.AUDIO_OUT_FIRST)] - started)
            for _ in range(args.barge_ins):
                # A long reply still streaming, interrupted once its audio has started.
                config.default_chat = ChatReply(STORY, token_delay=0.02)
                turn += 1
                seen = len(server.chat_requests())
                with trio.fail_after(HANG_GUARD):
                    session.push_text("Tell me a story.")
                    await recorder.wait(turn, EventType.AUDIO_OUT_FIRST)
                    config.default_chat = ChatReply(REPLY)
                    session.push_text("Stop.")
                    barge = await recorder.wait(turn, EventType.BARGE_IN)
                    closed = await server.wait_closed(server.chat_requests()[seen].index)
                    turn += 1
                    await recorder.wait(turn, EventType.TURN_COMPLETED, EventType.TURN_CANCELLED)
                barge_close.append(closed - session.bus.t0 - barge)
        await planner.aclose()
        if isinstance(tts, OpenAITTS):
            await tts.aclose()
        nursery.cancel_scope.cancel()
    return {
        "benchmark": "openai",
        "what": "latency our plumbing adds with a zero-delay local OpenAI-compatible server",
        "tts": args.tts,
        "turns": args.turns,
        "warmup": args.warmup,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "request_out": _stats(request_out),
        "first_token": _stats(first_token),
        "first_audio": _stats(first_audio),
        "barge_in_close": _stats(barge_close),
    }


def _print_human(result: dict[str, Any]) -> None:
    print(f"bargein bench openai ({result['what']}; TTS: {result['tts']})")
    labels = {
        "request_out": "turn_started → request at server",
        "first_token": "turn_started → llm_first_token",
        "first_audio": "turn_started → audio_out_first",
        "barge_in_close": "barge_in → server sees stream closed",
    }
    for key, label in labels.items():
        s = result[key]
        if s.get("n"):
            print(
                f"  {label:40s} p50 {s['p50_ms']:8.3f} ms  p99 {s['p99_ms']:8.3f} ms  "
                f"max {s['max_ms']:8.3f} ms  (n={s['n']})"
            )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="bargein bench openai",
        description="Latency added by bargein's OpenAI-compatible engines and session plumbing.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--barge-ins", type=int, default=10)
    parser.add_argument(
        "--tts", choices=("openai", "scripted"), default="openai", help="TTS engine for the turns"
    )
    args = parser.parse_args(argv)
    result = trio.run(run, args)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_human(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
