"""Pure decision cores for barge-in and turn taking (no trio, no I/O).

``features`` (Whisper log-mel), ``smart_turn`` (optional learned end-of-turn model),
``backchannel`` (backchannel vs interruption classifier). See docs/turn_detection.md.
"""
