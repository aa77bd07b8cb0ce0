"""Phone calls over carrier media streams (Twilio Media Streams, Telnyx): docs/telephony.md.

codec.py (carrier frames <-> typed messages, pure), marks.py (heard truth from mark echoes,
pure), dtmf.py (key presses -> typed text, pure), carriers.py (what differs per carrier),
transport.py (the session's outbound edge), handler.py (one stream -> one Session),
signature.py (X-Twilio-Signature), routes.py (`/twilio` and `/telnyx` on the demo app).
"""

from bargein.transports.telephony.carriers import CARRIERS, TELNYX, TWILIO, Carrier
from bargein.transports.telephony.codec import CarrierCodec
from bargein.transports.telephony.handler import CallRecord, TelephonyServer
from bargein.transports.telephony.marks import MarkTracker
from bargein.transports.telephony.routes import EXTENSION, TelephonyConfig, add_telephony_routes

__all__ = [
    "CARRIERS",
    "EXTENSION",
    "TELNYX",
    "TWILIO",
    "CallRecord",
    "Carrier",
    "CarrierCodec",
    "MarkTracker",
    "TelephonyConfig",
    "TelephonyServer",
    "add_telephony_routes",
]
