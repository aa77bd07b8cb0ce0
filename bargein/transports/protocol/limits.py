"""The numbers of protocol version 1: its version, every size limit, the audio frame header."""

from __future__ import annotations

import struct
from typing import Final

from bargein.runtime.messages import SUPPORTED_RATES

__all__ = ["SUPPORTED_RATES"]  # re-exported: the rates `sample_rate`/`output_rate` accept

PROTOCOL_VERSION: Final = 1

# A control frame bigger than this is rejected before parsing (counted in characters).
MAX_TEXT_FRAME_CHARS: Final = 65_536
# Typed user input (`text`).
MAX_INPUT_TEXT_CHARS: Final = 4_000
# Text the server sends inside one message (transcripts, deltas, heard text).
MAX_SERVER_TEXT_CHARS: Final = 20_000
# One binary audio frame holds at most one second of audio at its declared rate; the page sends
# 20 ms. The limit keeps a client from parking megabytes in one frame.
MAX_AUDIO_SECONDS: Final = 1.0
MAX_TOKEN_CHARS: Final = 4_096
MAX_OPTIONS: Final = 16
MAX_OPTION_KEY_CHARS: Final = 64
# Option values reach engines and C libraries (espeak-ng): strings are short and printable,
# numbers have a magnitude any honoured option fits in.
MAX_OPTION_VALUE_CHARS: Final = 256
MAX_OPTION_NUMBER: Final = 1_000_000
MAX_RESUME_SECRET_CHARS: Final = 256
# `session.started` carries the heard history; the newest entries that fit this many encoded
# characters are sent, so the frame stays under MAX_TEXT_FRAME_CHARS with room to spare.
MAX_HISTORY_CHARS: Final = 48_000
MAX_HISTORY_ENTRIES: Final = 200
MAX_WORDS_PER_MESSAGE: Final = 256
UINT32_MAX: Final = 2**32 - 1
# After this many rejected frames the connection is not worth keeping.
DEFAULT_MAX_REJECTIONS: Final = 100
# How many recent turns the server remembers sent-sample counts for (to check `playback`).
TRACKED_TURNS: Final = 64

# Server → client audio frame header: kind (1 = PCM16 audio), flags (0), reserved (0),
# turn, start sample within the turn. 12 bytes keeps the PCM that follows 4-byte aligned, so
# the page can view it as an Int16Array in place.
AUDIO_HEADER: Final = struct.Struct("<BBHII")
AUDIO_KIND_PCM16: Final = 1


def max_audio_bytes(sample_rate: int) -> int:
    """Largest binary audio frame accepted at `sample_rate` (one second of PCM16 mono)."""
    return int(sample_rate * MAX_AUDIO_SECONDS) * 2
