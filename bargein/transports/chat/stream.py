"""One chat stream and the SSE response bodies that follow it: `ChatStream` (produced on this
worker, its replay buffer in memory) with `follow_local`, `RemoteStream` (produced on another
worker, read from the shared store) with `follow_remote`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from bargein.store import MemoryStore, Store, StoreUnavailable
from bargein.store.base import FINAL_EVENTS
from bargein.transports.chat.config import ChatConfig
from bargein.transports.sse import (
    Gap,
    ReplayBuffer,
    encode_comment,
    encode_event,
    encode_retry,
)


def _json(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class ChatStream:
    """One planner run and its replay buffer; any number of followers over its lifetime."""

    def __init__(self, buffer: ReplayBuffer, shared: Store | None = None) -> None:
        self.buffer = buffer
        self.shared = shared if shared is not None else MemoryStore()
        self.followers = 0
        self.cancel_scope = trio.CancelScope()
        self._changed = trio.Event()
        self._membership = trio.Event()

    @property
    def stream_id(self) -> str:
        return self.buffer.stream_id

    def append(self, event: str, data: Mapping[str, Any]) -> None:
        record = self.buffer.append(event, _json(data))
        self.shared.append_record(record, final=event in FINAL_EVENTS)
        self._wake()

    def finish(self) -> None:
        if not self.buffer.finished:
            self.buffer.finish()
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self, seen_seq: int) -> None:
        """Return once there is an event after `seen_seq`, or the stream is finished."""
        while self.buffer.last_seq <= seen_seq and not self.buffer.finished:
            await self._changed.wait()

    def attach(self) -> None:
        self.followers += 1
        self._membership_changed()

    def detach(self) -> None:
        self.followers -= 1
        self._membership_changed()

    def _membership_changed(self) -> None:
        self._membership.set()
        self._membership = trio.Event()

    async def wait_orphaned(self, grace: float) -> None:
        """Return once no follower has been attached for `grace` seconds in a row."""
        while True:
            while self.followers:
                await self._membership.wait()
            with trio.move_on_after(grace):
                while not self.followers:
                    await self._membership.wait()
            if not self.followers:
                return


async def follow_local(stream: ChatStream, after: int, config: ChatConfig) -> AsyncIterator[bytes]:
    """The response body for this worker's `stream`: replay after `after`, then live events,
    heartbeats when quiet.

    Returns when the stream has finished and everything was sent; the caller's cancellation
    (client gone) detaches the follower.
    """
    stream.attach()
    try:
        yield encode_retry(config.retry_ms)
        seen = after
        while True:
            result = stream.buffer.after(seen)
            if isinstance(result, Gap):
                # This follower fell so far behind that the buffer wrapped: say so, stop.
                yield _error_event("replay_gap", f"events after {seen} lost")
                return
            for record in result.records:
                yield record.encode()
                seen = record.seq
            if stream.buffer.finished and seen == stream.buffer.last_seq:
                return
            with trio.move_on_after(config.heartbeat_interval) as quiet:
                await stream.wait_changed(seen)
            if quiet.cancelled_caught:
                yield encode_comment("ping")
    finally:
        stream.detach()


@dataclass(frozen=True, slots=True)
class RemoteStream:
    """A stream another worker produces, read from the shared store."""

    stream_id: str


async def follow_remote(
    shared: Store, stream: RemoteStream, after: int, config: ChatConfig
) -> AsyncIterator[bytes]:
    """The response body for a stream of another worker: what the store holds after `after`,
    then each event as that worker writes it, heartbeats when quiet. Every event once, in
    order; a hole (the store lost events) ends the body with `replay_gap`, a producer that
    stopped holding the stream without its final event with `stream_lost`, the store gone
    with `store_unavailable` (the client may reconnect with its Last-Event-ID)."""
    # Wake at least this often: to mark the stream followed before the mark lapses.
    wait = min(config.heartbeat_interval, config.orphan_timeout / 3)
    yield encode_retry(config.retry_ms)
    seen = after
    quiet_since = trio.current_time()
    while True:
        shared.mark_followed(stream.stream_id, config.orphan_timeout)
        try:
            read = await shared.read_records(stream.stream_id, seen, wait=wait)
        except StoreUnavailable as exc:
            yield _error_event("store_unavailable", str(exc))
            return
        if read is None:
            yield _error_event("stream_lost", f"stream {stream.stream_id} is gone from the store")
            return
        for record in read.records:
            if record.seq != seen + 1:
                yield _error_event("replay_gap", f"events after {seen} lost")
                return
            yield record.encode()
            seen = record.seq
            quiet_since = trio.current_time()
        if read.finished and seen >= read.last_seq:
            return
        if not read.records:
            if not read.producer_alive:
                yield _error_event("stream_lost", "the worker producing the stream stopped")
                return
            if trio.current_time() - quiet_since >= config.heartbeat_interval:
                yield encode_comment("ping")
                quiet_since = trio.current_time()


def _error_event(code: str, message: str) -> bytes:
    return encode_event(_json({"code": code, "message": message}), event="error")
