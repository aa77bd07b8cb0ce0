"""Where `RedisStore` keeps things in Redis or Valkey: key names, Lua scripts, URL redaction.

Keys (prefix ``bargein:``):

    conv:<session>            a conversation record (JSON), EX `conversation_ttl`
    conv:<session>:seq        the newest event number of the session, EX `conversation_ttl`
    sessions                  sorted set: session id -> lease expiry (ms, Redis server clock)
    chat:<stream>             a Redis Stream: entry id ``0-<seq>``, fields e (event), d (data),
                              f ("1" on the final event); XADD MAXLEN = `capacity`, EX `stream_ttl`
    chat:<stream>:producer    set while the producing worker is alive (PX)
    chat:<stream>:followed    set while a reader on another worker follows it (PX)
    events (channel)          every worker's session events, PUBLISHed, for the monitors
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

PREFIX: Final = "bargein:"
EVENTS_CHANNEL: Final = PREFIX + "events"
SESSIONS_KEY: Final = PREFIX + "sessions"


def conversation_key(session_id: str) -> str:
    return PREFIX + "conv:" + session_id


def seq_key(session_id: str) -> str:
    return conversation_key(session_id) + ":seq"


def stream_key(stream_id: str) -> str:
    return PREFIX + "chat:" + stream_id


def producer_key(stream_id: str) -> str:
    return stream_key(stream_id) + ":producer"


def followed_key(stream_id: str) -> str:
    return stream_key(stream_id) + ":followed"


def entry_seq(identifier: str) -> int:
    """The event number of a chat stream entry (its id is ``0-<seq>``)."""
    return int(str(identifier).partition("-")[2])


# Slots are leases on the Redis server's clock, so workers on machines whose clocks differ agree.
ACQUIRE: Final = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and
   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
RENEW: Final = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
return #ARGV - 1
"""
LIVE: Final = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
