"""A whole session with the OpenAI planner against the local server, on the real clock:
barge-in through the real floor closes the LLM stream, and the next request carries only what
the user heard."""

from __future__ import annotations

import trio

from bargein.engines.base import Engines
from bargein.engines.openai_compat import INTERRUPTED_MARKER, SPEECH_SYSTEM_PROMPT, OpenAIPlanner
from bargein.runtime.events import Event, EventType
from bargein.session import SessionConfig, open_session
from bargein.testing.memory import MemoryTransport
from bargein.testing.openai_server import ChatReply, OpenAIServer, ServerConfig, serve_openai
from bargein.testing.scripted import ScriptedStt, ScriptedTts

HANG_GUARD = 30  # seconds; a hang guard, not a speed bound
STORY = (
    "Once upon a time there was a small robot. It lived in a quiet town by the sea. "
    "Every morning it walked to the harbour to count the boats. One day a storm came."
)


async def test_barge_in_closes_the_stream_and_the_next_request_has_only_the_heard_part(
    nursery: trio.Nursery,
) -> None:
    # Tokens arrive faster than speech but the reply is still streaming at the barge-in.
    script = [ChatReply(STORY, token_delay=0.05), "It is noon."]
    server: OpenAIServer = await nursery.start(serve_openai, ServerConfig(chat=script))
    planner = OpenAIPlanner(base_url=server.url, model="m")
    engines = Engines(stt=ScriptedStt(), planner=planner, tts=ScriptedTts(ms_per_char=60.0))
    transport = MemoryTransport()
    audio_started = trio.Event()
    barge: list[Event] = []
    done = trio.Event()

    def on_event(event: Event) -> None:
        if event.type == EventType.AUDIO_OUT_FIRST and event.turn == 1:
            audio_started.set()
        elif event.type == EventType.BARGE_IN:
            barge.append(event)
        elif event.type == EventType.TURN_COMPLETED and event.turn == 2:
            done.set()

    with trio.fail_after(HANG_GUARD):
        async with open_session(SessionConfig(), engines, transport) as session:
            session.bus.add_listener(on_event)
            session.push_text("Tell me a story.")
            await audio_started.wait()
            await trio.sleep(0.8)  # let the user hear a few words
            session.push_text("Stop. What time is it?")
            closed_at = await server.wait_closed(0)
            await done.wait()
            t0 = session.bus.t0
            messages = session.messages
        await planner.aclose()

    first, second = server.chat_requests()
    assert first.completed_at is None  # the stream was abandoned, not finished
    assert len(barge) == 1 and barge[0].turn == 1
    # The HTTP stream was closed after the floor's decision, before the story finished
    # streaming (how soon is a benchmark figure: bargein bench openai).
    assert closed_at >= t0 + barge[0].t

    heard = messages[1]
    assert heard.role == "assistant" and heard.interrupted
    assert heard.content and STORY.startswith(heard.content) and heard.content != STORY
    assert second.messages == [
        {"role": "system", "content": SPEECH_SYSTEM_PROMPT},
        {"role": "user", "content": "Tell me a story."},
        {"role": "assistant", "content": f"{heard.content} {INTERRUPTED_MARKER}"},
        {"role": "user", "content": "Stop. What time is it?"},
    ]
    assert messages[-1].content == "It is noon."
