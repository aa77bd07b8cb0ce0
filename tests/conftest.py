from __future__ import annotations

import pytest
import trio.testing

from bargein.testing.audio import shared_audio_dir


@pytest.fixture(scope="session")
def audio_dir():  # type: ignore[no-untyped-def]
    try:
        return shared_audio_dir()
    except FileNotFoundError:
        pytest.skip("the shared recordings (../shared/audio) are not beside this checkout")


@pytest.fixture
def loopback_clock() -> trio.testing.MockClock:
    """A virtual clock for tests over real loopback sockets: it jumps to the next deadline only
    after every task has waited 10 ms of real time, so a packet whose delivery the kernel
    deferred (ksoftirqd, on a loaded machine) lands before time moves."""
    return trio.testing.MockClock(autojump_threshold=0.01)
