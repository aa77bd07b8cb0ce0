"""`SessionConfig`: everything about a session but its engines and transport, validated once.

Kept apart from `bargein.session` (which wires the actors) so transports, research and tools can
build and check a configuration without the session's machinery; `bargein.session` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bargein.actors.policy import InterruptionPolicy
from bargein.actors.vad import VadConfig
from bargein.runtime.compute import ComputeMode
from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import SUPPORTED_RATES


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything about a session but its engines and transport. Times in milliseconds."""

    input_rate: int = 16000
    output_rate: int = 16000
    vad: VadConfig = field(default_factory=VadConfig)
    policy: InterruptionPolicy = field(default_factory=InterruptionPolicy)
    # Analysis frames for VAD/STT (webrtcvad takes 10, 20 or 30 ms) and paced output frames.
    frame_ms: int = 20
    output_frame_ms: int = 20
    # How far ahead of real time egress hands audio to the transport (a jitter cushion for
    # remote peers); every ms of it is audio the peer may play after a barge-in decision.
    egress_lead_ms: int = 0
    # A turn is over when the peer has played its last sample: once the peer has reported
    # playback, egress waits for the report of the last sample up to lead + this grace.
    playback_grace_ms: int = 300
    # How far TTS may run ahead of playout before backpressure stops it.
    tts_buffer_ms: int = 2000
    # Live ingress never blocks the transport: beyond this many chunks the oldest is dropped.
    ingress_chunks: int = 100
    # Ingress is limited to real time plus this much audio of burst; chunks beyond it are
    # refused (counted as `rate_limited`), so a client pushing faster cannot starve the others.
    ingress_burst_ms: int = 2000
    # Cancel the assistant's own voice (what egress played) from the mic before VAD and STT,
    # for transports without the browser's AEC (telephony, speakerphones): docs/dsp.md.
    echo_cancel: bool = False
    stt_preroll_ms: int = 200
    # The front end hands STT its frames, and STT the recognizer its audio, in batches this
    # long (a whole number of frames): a word's partial reaches the floor at most one batch
    # after its audio is captured. The classifier presets set 40 (docs/engines.md, "The STT
    # batch"); 100 keeps the media plane's hops fewer for sessions that do not decide on words.
    stt_batch_ms: int = 100
    # A model quiet this long mid-sentence gets what it said so far spoken anyway.
    quiet_flush_ms: int = 600
    # The planner's whole reply must be done within this (time it is held up by TTS
    # backpressure excluded; None: no deadline), besides any stall timeout of the engine.
    turn_deadline_ms: int | None = 60000
    # Spoken after a planner failure or a missed deadline, instead of dead air ("": nothing).
    fallback_text: str = "Sorry, something went wrong."
    system_prompt: str | None = None
    # The conversation so far, for a session that continues one (e.g. a client resuming).
    history: tuple[ChatMessage, ...] = ()
    # A resumed conversation continues its turn numbers and event sequence numbers.
    first_turn: int = 1
    first_seq: int = 0
    # Budget (characters of message content) for the history a planner request carries:
    # the oldest messages go first, the system prompt and the newest message always stay.
    history_chars: int | None = 24000
    compute: ComputeMode = "thread"
    trace_path: str | None = None
    session_id: str | None = None
    # The preset (bargein.presets) this config was built from, reported in the trace's
    # `session_started` and `/ws` `session.started` (None: none; later overrides not tracked).
    preset: str | None = None

    def __post_init__(self) -> None:
        for name in ("input_rate", "output_rate"):
            if getattr(self, name) not in SUPPORTED_RATES:
                raise ValueError(f"{name} must be one of {sorted(SUPPORTED_RATES)}")
        if self.frame_ms not in (10, 20, 30):
            raise ValueError("frame_ms must be 10, 20 or 30")
        if self.output_frame_ms <= 0 or self.output_rate * self.output_frame_ms % 1000:
            raise ValueError("output_frame_ms must give a whole number of samples")
        if self.compute not in ("thread", "inline"):
            raise ValueError("compute must be 'thread' or 'inline'")
        if self.first_turn < 1 or self.first_seq < 0:
            raise ValueError("first_turn must be >= 1 and first_seq >= 0")
        if self.turn_deadline_ms is not None and self.turn_deadline_ms <= 0:
            raise ValueError("turn_deadline_ms must be positive (or None: no deadline)")
        if len(self.fallback_text) > 500:
            raise ValueError("fallback_text must be at most 500 characters")
        if self.history_chars is not None and self.history_chars < 1:
            raise ValueError("history_chars must be positive (or None: no budget)")
        if not isinstance(self.echo_cancel, bool):
            raise ValueError("echo_cancel must be true or false")
        batch = self.stt_batch_ms
        if not (isinstance(batch, int) and self.frame_ms <= batch <= 1000
                and batch % self.frame_ms == 0):
            raise ValueError("stt_batch_ms must be a whole number of frames (frame_ms) up to 1000")
        if self.ingress_burst_ms < self.frame_ms or self.playback_grace_ms < 0:
            raise ValueError("ingress_burst_ms must hold a frame; playback_grace_ms >= 0")
