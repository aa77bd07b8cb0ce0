"""Helpers for tests and benchmarks (real sockets, recordings, scripted engines, fake servers)."""

from bargein.testing import trio_websocket_fix

trio_websocket_fix.apply()  # our trio-websocket clients must survive a ping crossing their close
