"""Liveness after a quiet stretch (websocket/liveness.py): a connection that was sent nothing
for longer than `pong_timeout` (a user thinking in silence) is pinged again once output
resumes, and must get `pong_timeout` to answer that ping, not be reset at once because its
last pong is old. Found by `bench load`'s raw client against real hypercorn (pings every
0.1 s, pong timeout 1 s: reset 0.1 s after the reply to a 2 s utterance began)."""

from __future__ import annotations

from bargein.transports.websocket.liveness import Liveness


def test_a_ping_after_a_quiet_stretch_gets_the_full_pong_timeout() -> None:
    state = Liveness(2.0, 7.0, now=0.0)
    state.output()
    assert state.ping(2.0) is not None
    state.sent()
    assert state.pong((1).to_bytes(8, "big"), 2.01)
    for t in range(4, 21, 2):  # nothing sent: no pings, nothing to prove
        assert state.ping(float(t)) is None
    state.output()  # at ~20.5: the user speaks again
    payload = state.ping(22.0)
    assert payload is not None
    state.sent()
    assert not state.overdue(22.0)
    assert not state.overdue(26.9)
    # Still found: no pong for pong_timeout after the output this ping covers.
    assert state.overdue(27.0)


def test_a_never_reader_is_still_overdue_pong_timeout_after_its_start() -> None:
    state = Liveness(2.0, 7.0, now=0.0)
    state.output()  # session.started, never read
    assert state.ping(2.0) is not None
    state.sent()
    assert not state.overdue(6.99)
    assert state.overdue(7.0)
