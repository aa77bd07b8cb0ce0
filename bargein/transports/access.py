"""Who may use the demo server: pure checks of `Host`, `Origin` and bearer tokens (no I/O).

The web app (bargein/transports/app.py) asks `AccessPolicy` about every HTTP request and every
WebSocket upgrade before a handler runs, the same way for every endpoint:

1. `Host` must name this server (DNS-rebinding defence): loopback names, the bind host, and
   whatever `allow_hosts` adds (``*`` allows any).
2. `Origin`, when the client sends one (browsers always do on WebSocket upgrades and on
   cross-origin requests), must be the page's own origin, a loopback origin or one of
   `allow_origins` (``*`` allows any).
3. The endpoint's tier decides the token: `PUBLIC` (the page, static files, `/healthz`) needs
   none; `USER` (the voice socket, the chat stream) needs the server token when one is set;
   `OPERATOR` (the monitoring stream) is off unless enabled, then needs the operator token (or,
   without one, the server token); open only on a loopback bind with no token configured.

Tokens are compared with `hmac.compare_digest` and never appear in a refusal's message.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
# Tokens travel in `Authorization: Bearer`, in a `bearer.<token>` WebSocket subprotocol (an
# RFC 7230 token) and in `session.start`: this alphabet is valid in all three.
TOKEN_RE: Final = re.compile(r"[A-Za-z0-9._~+-]{1,256}")
SUBPROTOCOL_PREFIX: Final = "bearer."
# Offered beside `bearer.<token>`, this is the subprotocol the server selects, so the token is
# not echoed back in the handshake response.
APP_SUBPROTOCOL: Final = "bargein"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class Tier(enum.Enum):
    PUBLIC = "public"
    USER = "user"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class AccessConfig:
    token: str | None = None
    operator_token: str | None = None
    monitoring: bool = False
    allow_hosts: tuple[str, ...] = ()
    allow_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("token", "operator_token"):
            value = getattr(self, name)
            if value is not None and not TOKEN_RE.fullmatch(value):
                # The value itself is a secret: never part of the message.
                raise ValueError(f"{name} must be 1-256 characters of A-Z a-z 0-9 . _ ~ + -")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: the HTTP status, a stable code, a message without secrets."""

    status: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Grant:
    """A request may go on. `authorized`: a valid token was already presented (or none is
    needed); `subprotocol`: the WebSocket subprotocol to select, if the client offered any."""

    authorized: bool
    subprotocol: str | None = None


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str | None:
    """The name in a `Host` header (lower case, without port or trailing dot); None if the
    header is malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
    else:
        name, _, port = value.partition(":")
        if port and not port.isdigit():  # also refuses a bare IPv6 address
            return None
    name = name.rstrip(".")
    return name or None


def _origin_key(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    return scheme, host.rstrip("."), port if port is not None else _DEFAULT_PORTS.get(scheme, 0)


def parse_origin(value: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an `Origin` header; None for "null" or anything malformed."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return _origin_key(parts.scheme, parts.hostname, port)


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


class AccessPolicy:
    """The access model for one bound server. Pure: decides and counts refusals by code."""

    def __init__(self, config: AccessConfig, bind_host: str) -> None:
        self.config = config
        self.bind_host = bind_host
        if config.monitoring and self.operator_token is None and not is_loopback(bind_host):
            raise ValueError(
                "the monitoring stream on a non-loopback address needs --operator-token or --token"
            )
        hosts = {h for h in (host_name(n) for n in config.allow_hosts) if h is not None}
        bind = host_name(f"[{bind_host}]" if ":" in bind_host else bind_host)
        self.allowed_hosts = frozenset(LOOPBACK_NAMES | hosts | ({bind} if bind else set()))
        self.any_host = "*" in config.allow_hosts
        self.any_origin = "*" in config.allow_origins
        origins = (parse_origin(o) for o in config.allow_origins if o != "*")
        self.allowed_origins = frozenset(o for o in origins if o is not None)
        self.refused: Counter[str] = Counter()

    @property
    def operator_token(self) -> str | None:
        return self.config.operator_token or self.config.token

    # -- the checks ---------------------------------------------------------------------------

    def check_host(self, host: str | None) -> Refusal | None:
        if self.any_host:
            return None
        name = host_name(host or "")
        if name is None or name not in self.allowed_hosts:
            return Refusal(403, "forbidden_host", "this server does not answer to that Host name")
        return None

    def check_origin(self, origin: str | None, host: str | None) -> Refusal | None:
        if origin is None or self.any_origin:
            return None
        parsed = parse_origin(origin)
        if parsed is not None and (
            parsed in self.allowed_origins
            or is_loopback(parsed[1])
            or self._is_own_origin(parsed, host or "")
        ):
            return None
        return Refusal(403, "forbidden_origin", "requests from that Origin are not allowed")

    @staticmethod
    def _is_own_origin(origin: tuple[str, str, int], host: str) -> bool:
        # The page's own origin: the Host it was loaded from, with the origin's scheme.
        scheme = origin[0]
        try:
            parts = urlsplit(f"{scheme}://{host.strip().lower()}")
            own = _origin_key(scheme, parts.hostname or "", parts.port)
        except ValueError:
            return False
        return bool(parts.hostname) and own == origin

    def check_token(self, tier: Tier, presented: Sequence[str]) -> Refusal | Grant:
        """`presented`: the tokens the request carries (header, subprotocol), possibly none."""
        if tier is Tier.PUBLIC:
            return Grant(authorized=True)
        if tier is Tier.OPERATOR:
            if not self.config.monitoring:
                return Refusal(404, "monitoring_disabled", "the monitoring stream is off")
            expected = self.operator_token
        else:
            expected = self.config.token
        if expected is None:
            return Grant(authorized=True)
        if not presented:
            return Refusal(401, "unauthorized", "a bearer token is required")
        if not all(_same(p, expected) for p in presented):
            return Refusal(401, "unauthorized", "the bearer token is not valid")
        return Grant(authorized=True)

    # -- per kind of request ------------------------------------------------------------------

    def http(
        self, tier: Tier, *, host: str | None, origin: str | None, authorization: str | None
    ) -> Refusal | Grant:
        token = bearer_token(authorization)
        return self._count(
            self.check_host(host)
            or self.check_origin(origin, host)
            or self.check_token(tier, [token] if token is not None else [])
        )

    def websocket(
        self,
        *,
        host: str | None,
        origin: str | None,
        authorization: str | None,
        subprotocols: Iterable[str] = (),
    ) -> Refusal | Grant:
        """An upgrade of the voice socket. Without a header or subprotocol token the grant is
        not `authorized`: the session handler then checks `session.start.token`."""
        offered = list(subprotocols)
        tokens = [p[len(SUBPROTOCOL_PREFIX) :] for p in offered if p.startswith(SUBPROTOCOL_PREFIX)]
        header = bearer_token(authorization)
        if header is not None:
            tokens.append(header)
        refusal = self.check_host(host) or self.check_origin(origin, host)
        if refusal is not None:
            return self._count(refusal)
        if self.config.token is not None and not tokens:
            return Grant(authorized=False, subprotocol=_select(offered))
        decision = self.check_token(Tier.USER, tokens)
        if isinstance(decision, Refusal):
            return self._count(decision)
        return Grant(authorized=True, subprotocol=_select(offered))

    def _count(self, decision: Refusal | Grant | None) -> Refusal | Grant:
        if decision is None:
            return Grant(authorized=True)
        if isinstance(decision, Refusal):
            self.refused[decision.code] += 1
        return decision


def _select(offered: Sequence[str]) -> str | None:
    # Browsers fail a handshake whose response selects none of the offered subprotocols.
    if APP_SUBPROTOCOL in offered:
        return APP_SUBPROTOCOL
    return offered[0] if offered else None


def startup_warnings(bind_host: str, config: AccessConfig) -> list[str]:
    """What an operator should hear before serving (pure; `DemoServer.serve` logs them)."""
    if is_loopback(bind_host):
        return []
    out = []
    if config.token is None:
        out.append(
            f"serving on {bind_host} without --token: anyone who can reach this port can hold "
            "voice sessions and spend planner work"
        )
    if not config.allow_hosts:
        out.append(
            f"only Host headers naming loopback or {bind_host} are answered; add --allow-host "
            "NAME for each name clients use"
        )
    return out
