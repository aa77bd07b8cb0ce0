"""bargein: a real-time voice-AI runtime on trio."""

__version__ = "0.1.0"
