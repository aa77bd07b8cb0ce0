"""`/twilio` and `/telnyx` on the demo app, behind the same access layer as `/ws`.

On the upgrade: `Host` must name this server (AccessPolicy.check_host, as for every request);
with a Twilio auth token configured, `/twilio` needs a valid `X-Twilio-Signature` (refused
403 otherwise). With the server's `--token` set, a stream must prove it some way: the Twilio
signature, a `token` query parameter on the URL (Telnyx), or a `token` custom parameter in
`start`. Carriers send no `Origin`; one that is sent is checked like on `/ws`.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from quart import websocket
from quart_trio import QuartTrio

from bargein.runtime.bus import EventHub
from bargein.transports.access import AccessConfig, AccessPolicy, Refusal
from bargein.transports.telephony.carriers import TELNYX, TWILIO, Carrier
from bargein.transports.telephony.handler import DEFAULT_LEAD_MS, EnginesFactory, TelephonyServer
from bargein.transports.telephony.signature import public_url, twilio_signature_ok

EXTENSION = "bargein.telephony"


@dataclass(frozen=True, slots=True)
class TelephonyConfig:
    # Twilio's account auth token: with it, `/twilio` upgrades must carry a valid signature.
    twilio_auth_token: str | None = None
    # The public scheme://host[:port] carriers connect to (a reverse proxy's), for the signature.
    public_url: str | None = None
    lead_ms: int = DEFAULT_LEAD_MS

    @classmethod
    def from_env(cls) -> TelephonyConfig:
        """`BARGEIN_TWILIO_AUTH_TOKEN` and `BARGEIN_PUBLIC_URL` (secrets stay out of argv)."""
        return cls(
            twilio_auth_token=os.environ.get("BARGEIN_TWILIO_AUTH_TOKEN") or None,
            public_url=os.environ.get("BARGEIN_PUBLIC_URL") or None,
        )


class ServerLike(Protocol):
    """What of `DemoServer` the routes use."""

    engines_factory: EnginesFactory
    hub: EventHub
    policy: AccessPolicy
    access: AccessConfig
    sessions: Any
    default_policy: str | None  # the preset of calls that name none


def add_telephony_routes(
    app: QuartTrio, server: ServerLike, config: TelephonyConfig | None = None
) -> TelephonyServer:
    """Register `/twilio` and `/telnyx`; returns the `TelephonyServer` (also kept in
    `app.extensions[EXTENSION]`)."""
    config = config or TelephonyConfig.from_env()
    telephony = TelephonyServer(
        server.engines_factory,
        hub=server.hub,
        token=server.access.token,
        lead_ms=config.lead_ms,
        max_calls=server.sessions.max_sessions,
        others_running=lambda: len(server.sessions.sessions),
        shutting_down=server.sessions.shutting_down,
        default_policy=server.default_policy,
    )
    app.extensions[EXTENSION] = telephony

    async def serve(carrier: Carrier) -> None:
        socket: Any = websocket._get_current_object()  # type: ignore[attr-defined]
        host = socket.headers.get("Host")
        policy = server.policy  # rebuilt by `serve` for the bound address: read it now
        refusal = policy.check_host(host) or policy.check_origin(socket.headers.get("Origin"), host)
        authorized = server.access.token is None
        if refusal is None and carrier is TWILIO and config.twilio_auth_token is not None:
            query = socket.query_string.decode("latin-1")
            url = public_url(config.public_url, host or "", socket.path, query)
            signature = socket.headers.get("X-Twilio-Signature")
            if twilio_signature_ok(config.twilio_auth_token, url, signature):
                authorized = True
            else:
                refusal = Refusal(403, "bad_signature", "X-Twilio-Signature is not valid")
        if refusal is None and not authorized and server.access.token is not None:
            given = parse_qs(socket.query_string.decode("latin-1")).get("token", [""])[0]
            authorized = hmac.compare_digest(given.encode(), server.access.token.encode())
        if refusal is not None:
            policy.refused[refusal.code] += 1
            telephony.stats.refused[refusal.code] += 1
            # Before `accept`: the upgrade is answered with an HTTP error, the stream never opens.
            await socket.close(1008, refusal.code)
            return
        await socket.accept()
        await telephony.handle(socket, carrier, authorized=authorized)

    async def twilio() -> None:
        await serve(TWILIO)

    async def telnyx() -> None:
        await serve(TELNYX)

    app.add_websocket("/twilio", "twilio", twilio)
    app.add_websocket("/telnyx", "telnyx", telnyx)
    return telephony
