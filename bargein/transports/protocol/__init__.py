"""The bargein wire protocol, version 1: a pure codec (no I/O, no trio), as h11/wsproto do it.

One WebSocket per session. Text frames carry JSON control messages and events, binary frames carry
audio. Feed received frames to `ServerProtocol.receive` / `ClientProtocol.receive` and get typed
messages back or a `RemoteProtocolError` with a stable `ErrorCode`; hand typed messages to `send`
and get the frame (``str`` or ``bytes``) to write, or a `LocalProtocolError` if *we* are about to
break the protocol (a bug on our side, never the peer's). docs/protocol.md is the reference.

Every outgoing control message is validated by the same parser the peer will run on it, so a
frame this module produces is one the other side accepts.

Split the h11 way, every public name re-exported here:

    limits      version, size limits, the audio frame header
    errors      `ErrorCode` and the exceptions
    messages    one frozen dataclass per message type
    fields      field validators (reused by transports with other framing)
    codec       JSON text ↔ messages, the parser table of each direction, audio frames
    connection  `ServerProtocol` / `ClientProtocol`: ordering rules and counters
"""

from bargein.transports.protocol.codec import (
    CLIENT_PARSERS,
    SERVER_PARSERS,
    decode_audio_out,
    encode_audio_out,
    history_within,
    message_to_dict,
    scalar_text,
)
from bargein.transports.protocol.connection import ClientProtocol, ServerProtocol
from bargein.transports.protocol.errors import (
    ErrorCode,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from bargein.transports.protocol.limits import (
    AUDIO_HEADER,
    AUDIO_KIND_PCM16,
    DEFAULT_MAX_REJECTIONS,
    MAX_AUDIO_SECONDS,
    MAX_HISTORY_CHARS,
    MAX_HISTORY_ENTRIES,
    MAX_INPUT_TEXT_CHARS,
    MAX_OPTION_KEY_CHARS,
    MAX_OPTION_NUMBER,
    MAX_OPTION_VALUE_CHARS,
    MAX_OPTIONS,
    MAX_RESUME_SECRET_CHARS,
    MAX_SERVER_TEXT_CHARS,
    MAX_TEXT_FRAME_CHARS,
    MAX_TOKEN_CHARS,
    MAX_WORDS_PER_MESSAGE,
    PROTOCOL_VERSION,
    SUPPORTED_RATES,
    UINT32_MAX,
    max_audio_bytes,
)
from bargein.transports.protocol.messages import (
    AssistantText,
    AudioEnd,
    AudioIn,
    AudioOut,
    Capabilities,
    Clear,
    ClientMessage,
    ErrorMessage,
    HistoryEntry,
    Int16Array,
    Interrupt,
    OptionValue,
    OutputDucked,
    OutputRestored,
    Playback,
    ServerMessage,
    SessionEnded,
    SessionStart,
    SessionStarted,
    SpeechStarted,
    SpeechStopped,
    StatusMessage,
    Text,
    TranscriptFinal,
    TranscriptPartial,
    TurnEnded,
    TurnMark,
    TurnStarted,
    Words,
    WordSpan,
)

__all__ = [
    "AUDIO_HEADER",
    "AUDIO_KIND_PCM16",
    "CLIENT_PARSERS",
    "DEFAULT_MAX_REJECTIONS",
    "MAX_AUDIO_SECONDS",
    "MAX_HISTORY_CHARS",
    "MAX_HISTORY_ENTRIES",
    "MAX_INPUT_TEXT_CHARS",
    "MAX_OPTIONS",
    "MAX_OPTION_KEY_CHARS",
    "MAX_OPTION_NUMBER",
    "MAX_OPTION_VALUE_CHARS",
    "MAX_RESUME_SECRET_CHARS",
    "MAX_SERVER_TEXT_CHARS",
    "MAX_TEXT_FRAME_CHARS",
    "MAX_TOKEN_CHARS",
    "MAX_WORDS_PER_MESSAGE",
    "PROTOCOL_VERSION",
    "SERVER_PARSERS",
    "SUPPORTED_RATES",
    "UINT32_MAX",
    "AssistantText",
    "AudioEnd",
    "AudioIn",
    "AudioOut",
    "Capabilities",
    "Clear",
    "ClientMessage",
    "ClientProtocol",
    "ErrorCode",
    "ErrorMessage",
    "HistoryEntry",
    "Int16Array",
    "Interrupt",
    "LocalProtocolError",
    "OptionValue",
    "OutputDucked",
    "OutputRestored",
    "Playback",
    "ProtocolError",
    "RemoteProtocolError",
    "ServerMessage",
    "ServerProtocol",
    "SessionEnded",
    "SessionStart",
    "SessionStarted",
    "SpeechStarted",
    "SpeechStopped",
    "StatusMessage",
    "Text",
    "TranscriptFinal",
    "TranscriptPartial",
    "TurnEnded",
    "TurnMark",
    "TurnStarted",
    "WordSpan",
    "Words",
    "decode_audio_out",
    "encode_audio_out",
    "history_within",
    "max_audio_bytes",
    "message_to_dict",
    "scalar_text",
]
