// The page's own trace: every control message it received or sent and a line per audio frame
// received, stamped with page time, downloadable as JSONL. Client-side only — the server keeps
// no per-session trace endpoint. Microphone frames are counted on the page, not traced.

const MAX_LINES = 50_000; // about 15 minutes of talk; the oldest lines go first

export class Trace {
  constructor() {
    this.lines = [];
    this.dropped = 0;
  }

  add(dir, record) {
    this.lines.push(JSON.stringify({ page_ms: Math.round(performance.now() * 10) / 10, dir, ...record }));
    if (this.lines.length > MAX_LINES) {
      this.lines.splice(0, this.lines.length - MAX_LINES);
      this.dropped++;
    }
  }

  received(msg) { this.add("in", { msg: redact(msg) }); }
  sent(msg) { this.add("out", { msg: redact(msg) }); }
  audio(turn, start, samples) { this.add("in", { audio: { turn, start, samples } }); }
  note(text) { this.add("page", { note: text }); }

  text() {
    return this.lines.join("\n") + (this.lines.length ? "\n" : "");
  }

  download(name) {
    const url = URL.createObjectURL(new Blob([this.text()], { type: "application/x-ndjson" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}

// Secrets never go into a file the user may share.
function redact(msg) {
  if (msg.token == null && msg.resume_secret == null) return msg;
  const out = { ...msg };
  if (out.token != null) out.token = "(hidden)";
  if (out.resume_secret != null) out.resume_secret = "(hidden)";
  return out;
}
