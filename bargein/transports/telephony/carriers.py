"""What differs between the carriers that speak the Media Streams event family.

Twilio and Telnyx send the same events (`connected`, `start`, `media`, `dtmf`, `mark`, `stop`)
and take the same ones back (`media`, `mark`, `clear`); they differ in field names, in which
codecs they offer, and in whether frames can arrive out of order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Carrier:
    name: str
    stream_key: str  # the stream id, top level of every carrier message
    call_key: str  # the call id, inside `start`
    format_key: str  # the media format object, inside `start`
    params_key: str  # custom parameters (session options), inside `start`
    sequence_key: str  # per-message sequence number (a decimal string)
    # Encoding names the carrier uses in the media format -> our codec ("ulaw" | "alaw").
    encodings: tuple[tuple[str, str], ...]
    # Frames may arrive out of order: order them by sequence number (Telnyx documents this).
    reorders: bool
    # Outbound messages must name the stream (Twilio requires `streamSid`).
    names_stream: bool

    def codec_of(self, encoding: str) -> str | None:
        return dict(self.encodings).get(encoding)


TWILIO: Final = Carrier(
    name="twilio",
    stream_key="streamSid",
    call_key="callSid",
    format_key="mediaFormat",
    params_key="customParameters",
    sequence_key="sequenceNumber",
    encodings=(("audio/x-mulaw", "ulaw"),),
    reorders=False,
    names_stream=True,
)

TELNYX: Final = Carrier(
    name="telnyx",
    stream_key="stream_id",
    call_key="call_control_id",
    format_key="media_format",
    params_key="custom_parameters",
    sequence_key="sequence_number",
    encodings=(("PCMU", "ulaw"), ("PCMA", "alaw")),
    reorders=True,
    names_stream=False,
)

CARRIERS: Final = {c.name: c for c in (TWILIO, TELNYX)}
