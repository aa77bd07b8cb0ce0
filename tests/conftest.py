from __future__ import annotations

import pytest

from bargein.testing.audio import shared_audio_dir


@pytest.fixture(scope="session")
def audio_dir():  # type: ignore[no-untyped-def]
    try:
        return shared_audio_dir()
    except FileNotFoundError:
        pytest.skip("the shared recordings (../shared/audio) are not beside this checkout")
