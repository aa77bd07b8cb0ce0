"""The Realtime conversation's items: messages, function calls and their outputs.

An `Item` is what the client sees (`to_json`) and what the model sees (`model_message`); an
assistant audio item also keeps what was sent and what of it was heard (truncation).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import WordMark

ServerEvent = dict[str, Any]
# The items a conversation keeps (the oldest go first; the model window is bounded anyway).
MAX_ITEMS = 1024


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


@dataclass(slots=True, eq=False)
class Item:
    id: str
    type: str  # message | function_call | function_call_output
    role: str | None = None
    status: str = "completed"
    content: list[dict[str, Any]] = field(default_factory=list)
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None
    response_id: str | None = None
    # Assistant audio: what was sent (samples at 24 kHz), its word marks, what was heard.
    audio_samples: int = 0
    marks: list[WordMark] = field(default_factory=list)
    generated: str = ""
    heard: str | None = None
    # User audio awaiting its transcript.
    transcribing: bool = False

    @property
    def transcript(self) -> str:
        return self.generated if self.heard is None else self.heard

    def model_message(self) -> ChatMessage | None:
        """The item as the planner sees it (None: nothing to say, e.g. no transcript)."""
        if self.type == "function_call":
            return ChatMessage("assistant", f"[called {self.name}({self.arguments})]")
        if self.type == "function_call_output":
            return ChatMessage("system", f"[function call {self.call_id} returned: "
                                         f"{self.output}]")
        if self.role == "assistant":
            text = self.transcript
            return ChatMessage("assistant", text, self.status == "incomplete") if text else None
        texts = [str(p.get("text") or p.get("transcript") or "") for p in self.content]
        text = " ".join(t for t in texts if t)
        if not text:
            return None
        return ChatMessage("system" if self.role == "system" else "user", text)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "object": "realtime.item", "type": self.type,
                               "status": self.status}
        if self.type == "message":
            out["role"] = self.role
            content = []
            for part in self.content:
                part = dict(part)
                if part.get("type") == "output_audio":
                    part["transcript"] = self.transcript
                elif part.get("type") == "output_text":
                    part["text"] = self.transcript
                content.append(part)
            out["content"] = content
        elif self.type == "function_call":
            out.update(call_id=self.call_id, name=self.name, arguments=self.arguments)
        else:
            out.update(call_id=self.call_id, output=self.output)
        return out



def _words_within(marks: list[WordMark], end: int) -> str:
    """The words whose audio ends within the first `end` samples."""
    return " ".join(m.text for m in marks if m.end <= end).strip()

