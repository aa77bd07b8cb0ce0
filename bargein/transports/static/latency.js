// Latency the user felt, per turn, from the server's session-clock stamps (`t`; docs/web.md,
// "The page"). `latencyParts` is pure; the render functions draw the table and the timeline.

const TIMELINE_TURNS = 6;
const TABLE_TURNS = 8;

// marks (all session-clock seconds, any may be missing):
//   speech_end        speech.stopped.speech_end — when the user actually stopped talking
//   speech_stopped    speech.stopped.t — when the VAD decided the utterance was over
//   turn_started      turn.started.t (the final transcript is in)
//   llm_first_token, tts_first_audio, audio_out_first   turn.mark t
//   audio_played_first  turn.mark t — when the reply's first sample played in this page
//   typed             the turn answers typed text (origin: turn.started)
// The five parts add up to the total exactly: each starts where the previous one ended.
export function latencyParts(m) {
  const d = (a, b) => (a == null || b == null ? null : b - a);
  const origin = m.typed ? m.turn_started : m.speech_end;
  return {
    origin,
    total: d(origin, m.audio_played_first),
    endpointing: m.typed ? null : d(m.speech_end, m.speech_stopped),
    stt: m.typed ? null : d(m.speech_stopped, m.turn_started),
    llm: d(m.turn_started, m.llm_first_token),
    tts: d(m.llm_first_token, m.tts_first_audio),
    playout: d(m.tts_first_audio, m.audio_played_first),
  };
}

const ms = (s) => (s == null ? "–" : String(Math.round(s * 1000)));

const COLUMNS = ["endpointing", "stt", "llm", "tts", "playout", "total"];

// turns: [{turn, marks, status}] oldest first.
export function renderLatency(tbody, turns) {
  tbody.textContent = "";
  for (const { turn, marks, status } of turns.slice(-TABLE_TURNS).reverse()) {
    const parts = latencyParts(marks);
    const tr = document.createElement("tr");
    tr.dataset.turn = String(turn);
    const td = (text, col) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (col) cell.dataset.col = col;
      tr.append(cell);
      return cell;
    };
    td(String(turn) + (marks.typed ? " ⌨" : ""), "turn");
    for (const col of COLUMNS) td(ms(parts[col]), col);
    const end = td(status || "…", "status");
    if (status === "interrupted") end.className = "interrupted";
    tbody.append(tr);
  }
}

export function renderTimeline(container, turns) {
  container.textContent = "";
  const rows = turns.slice(-TIMELINE_TURNS).map(({ turn, marks, status }) => {
    const t0 = latencyParts(marks).origin ?? marks.turn_started;
    const end = marks.ended ?? marks.audio_played_first ?? marks.tts_first_audio ?? marks.llm_first_token ?? t0;
    return { turn, marks, status, t0, end };
  });
  const longest = Math.max(0.5, ...rows.map((r) => (r.end ?? 0) - (r.t0 ?? 0)));
  for (const { turn, marks: m, status, t0, end } of rows) {
    const row = document.createElement("div");
    row.className = "tl-row";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = `#${turn}`;
    const bar = document.createElement("span");
    bar.className = "tl-bar";
    row.append(label, bar);
    const seg = (cls, name, a, b) => {
      if (a == null || b == null || b < a || t0 == null) return;
      const el = document.createElement("span");
      el.className = `seg ${cls}`;
      el.style.left = `${((a - t0) / longest) * 100}%`;
      el.style.width = `${Math.max(0.5, ((b - a) / longest) * 100)}%`;
      el.title = `${name}: ${Math.round((b - a) * 1000)} ms`;
      bar.append(el);
    };
    if (!m.typed) {
      seg("wait", "endpointing wait", m.speech_end, m.speech_stopped);
      seg("stt", "speech to text", m.speech_stopped, m.turn_started);
    }
    seg("think", "LLM", m.turn_started, m.llm_first_token);
    seg("synth", "TTS", m.llm_first_token, m.tts_first_audio);
    seg("play", "transport/playout", m.tts_first_audio, m.audio_played_first);
    seg(status === "interrupted" ? "cut" : "speak", "speaking", m.audio_played_first ?? m.audio_out_first, end);
    container.append(row);
  }
}
