"""The local OpenAI-compatible server: wire format, scripts, observation, standalone mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import openai
import trio

import bargein
from bargein.testing.openai_server import (
    ChatReply,
    OpenAIServer,
    ServerConfig,
    ToolCall,
    load_script,
    serve_openai,
)

HANG_GUARD = 20  # seconds; a hang guard, not a speed bound
ROOT = Path(bargein.__file__).resolve().parent.parent


async def start(nursery: trio.Nursery, config: ServerConfig) -> OpenAIServer:
    server: OpenAIServer = await nursery.start(serve_openai, config)
    return server


async def test_sse_wire_format_is_openai_s(nursery: trio.Nursery) -> None:
    reply = ChatReply("Hi there.", tool_calls=(ToolCall("f", {"a": 1}, id="call_x"),))
    server = await start(nursery, ServerConfig(chat=[reply]))
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with trio.fail_after(HANG_GUARD):
        async with httpx2.AsyncClient() as client:
            response = await client.post(f"{server.url}/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(
        c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks
    )
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == "Hi there."
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {
        "index": 0,
        "id": "call_x",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"a": 1}'
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls" and set(finishes[:-1]) == {None}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5
    assert server.requests[0].json == body


async def test_non_streaming_completion_and_echo_default(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig(chat=[ChatReply(tool_calls=(ToolCall("f"),))]))
    client = openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0)
    with trio.fail_after(HANG_GUARD):
        first = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        second = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "are you there"}]
        )
        models = await client.models.list()
        await client.close()
    assert first.choices[0].finish_reason == "tool_calls"
    calls = first.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls if c.type == "function"] == ["f"]
    assert second.choices[0].message.content == "You said: are you there"
    assert [m.id for m in models.data] == ["bargein-local"]
    assert server.requests[0].headers["authorization"] == "Bearer k"


async def test_unknown_route_is_a_404(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig())
    with trio.fail_after(HANG_GUARD):
        async with httpx2.AsyncClient() as client:
            response = await client.get(f"{server.url}/nowhere")
    assert response.status_code == 404
    assert "no route" in response.json()["error"]["message"]


async def test_malformed_json_is_a_400_and_the_server_keeps_serving(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig())
    with trio.fail_after(HANG_GUARD):
        async with httpx2.AsyncClient() as client:
            for path in ("/audio/speech", "/chat/completions"):
                bad = await client.post(f"{server.url}{path}", content=b"{not json")
                assert bad.status_code == 400, path
            again = await client.get(f"{server.url}/nowhere")
    assert again.status_code == 404


def test_load_script(tmp_path: Path) -> None:
    script = {
        "chat": [
            "Plain reply.",
            {"text": "Let me look.", "tool_calls": [{"name": "f", "arguments": {"q": 1}}]},
        ],
        "transcripts": ["hello"],
        "default_token_delay": 0.01,
    }
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    config = load_script(str(path))
    assert config.chat == [
        "Plain reply.",
        ChatReply("Let me look.", tool_calls=(ToolCall("f", {"q": 1}),)),
    ]
    assert (config.transcripts, config.default_token_delay) == (["hello"], 0.01)


async def test_standalone_server_answers_with_its_script(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"chat": ["Scripted hello."]}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bargein.testing.openai_server", "--port", "0"]
    process = await trio.lowlevel.open_process(
        [*command, "--script", str(path)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(HANG_GUARD):
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(1)
            url = line.decode().split()[-1]
            client = openai.AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            await client.close()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert text == "Scripted hello."
    finally:
        process.kill()
        with trio.move_on_after(5, shield=True):
            await process.wait()
