// The bargein demo page: microphone → WebSocket (protocol v1, docs/protocol.md) → speakers.
// No build step, no dependencies. Everything the server says arrives as typed JSON frames or
// binary audio frames with a 12-byte header; everything shown is derived from those.

const PROTOCOL_VERSION = 1;
const FRAME_MS = 20;
const SUPPORTED_RATES = [8000, 16000, 22050, 24000, 32000, 44100, 48000];
const AUDIO_HEADER_BYTES = 12;
const MAX_BUFFERED_BYTES = 256 * 1024; // don't queue seconds of stale mic audio in the socket
const PLAYBACK_REPORT_MS = 100;
const TIMELINE_TURNS = 6;

const params = new URLSearchParams(location.search);
const requestedRate = Number(params.get("rate") || 24000);
const RATE = SUPPORTED_RATES.includes(requestedRate) ? requestedRate : 24000;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), start: $("start"), stop: $("stop"), interrupt: $("interrupt"),
  conversation: $("conversation"), live: $("live"), form: $("text-form"), input: $("text-input"),
  latency: document.querySelector("#latency tbody"), timeline: $("timeline"), error: $("error"),
  session: $("stat-session"), level: $("stat-level"), sent: $("stat-sent"),
  dropped: $("stat-dropped"), played: $("stat-played"), errors: $("stat-errors"),
};

const state = {
  ws: null, ctx: null, mic: null, capture: null, player: null,
  started: false, // session.started received
  sessionId: sessionStorage.getItem("bargein.session") || null,
  outputRate: RATE,
  turns: new Map(), // turn -> TurnView
  speaking: false, // assistant audio queued or playing
  pendingOrigin: null, // server t of the last speech.stopped (latency origin)
  framesSent: 0, framesDropped: 0, errors: 0,
  played: {}, // turn -> samples played (from the playback worklet)
  reported: {}, // turn -> samples last reported to the server
  pendingText: [],
};

function setStatus(name, text) {
  ui.status.className = `pill ${name}`;
  ui.status.textContent = text || name;
}

function showError(text) {
  ui.error.textContent = text || "";
}

// ------------------------------------------------------------------ conversation view

function addUserMessage(text, typed) {
  const div = document.createElement("div");
  div.className = "msg user";
  div.innerHTML = `<span class="who">${typed ? "you (typed)" : "you"}</span>`;
  div.append(document.createTextNode(text));
  ui.conversation.append(div);
  div.scrollIntoView({ block: "end" });
}

class TurnView {
  constructor(turn, t) {
    this.turn = turn;
    this.marks = { turn_started: t, origin: state.pendingOrigin };
    state.pendingOrigin = null;
    this.text = "";
    this.words = []; // word marks [{text, start, end}] in output samples
    this.spokenCount = 0;
    this.ended = null;
    this.el = document.createElement("div");
    this.el.className = "msg assistant";
    this.el.dataset.turn = String(turn);
    this.el.innerHTML = `<span class="who">assistant · turn ${turn}</span><span class="body"></span>`;
    this.body = this.el.querySelector(".body");
    ui.conversation.append(this.el);
  }

  addText(delta) {
    this.text += delta;
    this.render();
  }

  addWords(words) {
    this.words.push(...words);
    this.updateSpoken();
  }

  updateSpoken() {
    const played = state.played[this.turn] || 0;
    let n = 0;
    for (const w of this.words) if (w.start < played) n++;
    if (n !== this.spokenCount) {
      this.spokenCount = n;
      this.render();
    }
  }

  end(msg) {
    this.ended = msg;
    this.marks.ended = msg.t;
    if (msg.status === "interrupted") {
      this.el.classList.add("interrupted");
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = `interrupted after ${(msg.heard_ms / 1000).toFixed(2)} s — struck-through words were never heard`;
      this.el.append(note);
    }
    this.render();
  }

  render() {
    const tokens = this.text.split(/(\s+)/).filter((s) => s.length > 0);
    // Which words count as spoken: while playing, the word marks played so far; once ended,
    // exactly the words of the heard text the server reports.
    let spoken = this.spokenCount;
    let heardWords = null;
    if (this.ended) {
      heardWords = this.ended.heard.trim() ? this.ended.heard.trim().split(/\s+/).length : 0;
      spoken = this.ended.status === "completed" ? Infinity : heardWords;
    }
    this.body.textContent = "";
    let index = 0;
    for (const token of tokens) {
      if (/^\s+$/.test(token)) {
        this.body.append(document.createTextNode(" "));
        continue;
      }
      const span = document.createElement("span");
      span.className = "w";
      if (index < spoken) span.classList.add("spoken");
      else if (this.ended && this.ended.status === "interrupted") span.classList.add("unheard");
      span.textContent = token;
      this.body.append(span);
      index++;
    }
    this.el.scrollIntoView({ block: "end" });
  }
}

function turnView(turn, t) {
  let view = state.turns.get(turn);
  if (!view) {
    view = new TurnView(turn, t ?? null);
    state.turns.set(turn, view);
  }
  return view;
}

// ------------------------------------------------------------------ latency and timeline

const ms = (a, b) => (a == null || b == null ? "–" : Math.round((b - a) * 1000).toString());

function renderLatency() {
  const views = [...state.turns.values()].slice(-8).reverse();
  ui.latency.textContent = "";
  for (const v of views) {
    const m = v.marks;
    const tr = document.createElement("tr");
    const status = v.ended ? v.ended.status : "…";
    const cells = [
      String(v.turn), ms(m.origin, m.transcript_final), ms(m.turn_started, m.llm_first_token),
      ms(m.llm_first_token, m.tts_first_audio), ms(m.origin ?? m.turn_started, m.audio_out_first),
      status,
    ];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 5 && status === "interrupted") td.className = "interrupted";
      tr.append(td);
    });
    ui.latency.append(tr);
  }
  renderTimeline();
}

function renderTimeline() {
  const views = [...state.turns.values()].slice(-TIMELINE_TURNS);
  ui.timeline.textContent = "";
  const spans = views.map((v) => {
    const m = v.marks;
    const t0 = m.origin ?? m.turn_started;
    const end = m.ended ?? m.audio_out_first ?? m.tts_first_audio ?? m.llm_first_token ?? t0;
    return { v, t0, end };
  });
  const longest = Math.max(0.5, ...spans.map((s) => (s.end ?? 0) - (s.t0 ?? 0)));
  for (const { v, t0, end } of spans) {
    const row = document.createElement("div");
    row.className = "tl-row";
    row.innerHTML = `<span class="label">#${v.turn}</span><span class="tl-bar"></span>`;
    const bar = row.querySelector(".tl-bar");
    const m = v.marks;
    const seg = (cls, a, b) => {
      if (a == null || b == null || b < a || t0 == null) return;
      const el = document.createElement("span");
      el.className = `seg ${cls}`;
      el.style.left = `${((a - t0) / longest) * 100}%`;
      el.style.width = `${Math.max(0.5, ((b - a) / longest) * 100)}%`;
      el.title = `${cls}: ${Math.round((b - a) * 1000)} ms`;
      bar.append(el);
    };
    seg("stt", t0, m.turn_started);
    seg("think", m.turn_started, m.llm_first_token ?? m.tts_first_audio);
    seg("synth", m.llm_first_token, m.tts_first_audio ?? m.audio_out_first);
    const interrupted = v.ended && v.ended.status === "interrupted";
    seg(interrupted ? "cut" : "speak", m.audio_out_first ?? m.tts_first_audio, end);
    ui.timeline.append(row);
  }
}

// ------------------------------------------------------------------ server messages

function onControl(msg) {
  if (msg.v !== PROTOCOL_VERSION) {
    showError(`server speaks protocol v${msg.v}, page speaks v${PROTOCOL_VERSION}`);
    return;
  }
  switch (msg.type) {
    case "session.started":
      state.started = true;
      state.outputRate = msg.output_rate;
      state.sessionId = msg.session_id;
      sessionStorage.setItem("bargein.session", msg.session_id);
      ui.session.textContent = msg.session_id + (msg.resumed ? " (resumed)" : "");
      setStatus("listening");
      ui.interrupt.disabled = false;
      for (const text of state.pendingText.splice(0)) sendText(text);
      break;
    case "speech.started":
      setStatus("hearing", "hearing you");
      break;
    case "speech.stopped":
      state.pendingOrigin = msg.t ?? null;
      setStatus("thinking");
      break;
    case "transcript.partial":
      ui.live.textContent = msg.text;
      break;
    case "transcript.final":
      ui.live.textContent = "";
      if (msg.text) addUserMessage(msg.text, false);
      state.lastFinal = msg.t ?? null;
      break;
    case "turn.started": {
      const view = turnView(msg.turn, msg.t);
      view.marks.turn_started = msg.t ?? view.marks.turn_started;
      view.marks.transcript_final = state.lastFinal ?? null;
      if (view.marks.origin == null) view.marks.origin = msg.t ?? null;
      state.lastFinal = null;
      setStatus("thinking");
      renderLatency();
      break;
    }
    case "assistant.text":
      turnView(msg.turn).addText(msg.delta);
      break;
    case "words":
      turnView(msg.turn).addWords(msg.words);
      break;
    case "turn.mark": {
      const view = turnView(msg.turn);
      if (view.marks[msg.mark] == null) view.marks[msg.mark] = msg.t ?? null;
      if (msg.mark === "audio_out_first") setStatus("speaking");
      renderLatency();
      break;
    }
    case "status":
      setStatus(state.speaking ? "speaking" : "thinking", msg.text);
      break;
    case "clear":
      state.player?.port.postMessage({ type: "clear", turn: msg.turn });
      break;
    case "turn.ended":
      turnView(msg.turn).end(msg);
      setStatus("listening");
      renderLatency();
      break;
    case "error":
      state.errors++;
      ui.errors.textContent = String(state.errors);
      showError(`${msg.code}: ${msg.message}`);
      if (msg.code === "unknown_session") sessionStorage.removeItem("bargein.session");
      if (msg.fatal) setStatus("error");
      break;
    case "session.ended":
      setStatus("idle", `ended (${msg.reason})`);
      break;
    default:
      // Unknown types are ignored: servers may add message types within v1.
      break;
  }
}

function onAudio(buffer) {
  if (buffer.byteLength <= AUDIO_HEADER_BYTES) return;
  const view = new DataView(buffer);
  if (view.getUint8(0) !== 1) return;
  const turn = view.getUint32(4, true);
  const start = view.getUint32(8, true);
  const pcm = new Int16Array(buffer, AUDIO_HEADER_BYTES, (buffer.byteLength - AUDIO_HEADER_BYTES) >> 1);
  const samples = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  state.player?.port.postMessage({ type: "audio", turn, start, samples }, [samples.buffer]);
}

function onPlayed(msg) {
  state.played = msg.played;
  state.speaking = msg.queued > 0;
  let total = 0;
  for (const [turn, samples] of Object.entries(msg.played)) {
    total += samples;
    state.turns.get(Number(turn))?.updateSpoken();
  }
  ui.played.textContent = `${(total / state.outputRate).toFixed(2)} s`;
  ui.played.dataset.samples = String(total);
}

// Report what actually played, per turn, so the server commits only heard words to history.
function reportPlayback() {
  if (!state.started || state.ws?.readyState !== WebSocket.OPEN) return;
  for (const [turn, samples] of Object.entries(state.played)) {
    if (state.reported[turn] === samples) continue;
    state.reported[turn] = samples;
    send({ type: "playback", turn: Number(turn), played_samples: samples });
  }
}

// ------------------------------------------------------------------ client messages

function send(msg) {
  state.ws.send(JSON.stringify({ ...msg, v: PROTOCOL_VERSION }));
}

function sendText(text) {
  state.pendingOrigin = null;
  addUserMessage(text, true);
  send({ type: "text", text });
}

function onMicFrame(e) {
  ui.level.value = e.data.peak;
  const ws = state.ws;
  if (!state.started || !ws || ws.readyState !== WebSocket.OPEN) return;
  if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
    // The network is behind: old audio is worth less than new, so drop rather than queue.
    state.framesDropped++;
    ui.dropped.textContent = String(state.framesDropped);
    return;
  }
  ws.send(e.data.pcm);
  state.framesSent++;
  if (state.framesSent % 10 === 0) ui.sent.textContent = String(state.framesSent);
}

// ------------------------------------------------------------------ lifecycle

async function start() {
  ui.start.disabled = true;
  showError("");
  setStatus("connecting", "connecting…");
  try {
    state.ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    await state.ctx.audioWorklet.addModule("/static/capture-worklet.js");
    await state.ctx.audioWorklet.addModule("/static/playback-worklet.js");
    state.player = new AudioWorkletNode(state.ctx, "pcm16-player", {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
    });
    state.player.port.onmessage = (e) => onPlayed(e.data);
    state.player.connect(state.ctx.destination);
    try {
      state.mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
      const source = state.ctx.createMediaStreamSource(state.mic);
      state.capture = new AudioWorkletNode(state.ctx, "pcm16-capture", {
        numberOfOutputs: 1,
        processorOptions: { frameSamples: Math.round((RATE * FRAME_MS) / 1000) },
      });
      state.capture.port.onmessage = onMicFrame;
      source.connect(state.capture);
      // A silent sink keeps the capture node pulled by the graph.
      const mute = new GainNode(state.ctx, { gain: 0 });
      state.capture.connect(mute).connect(state.ctx.destination);
    } catch (err) {
      showError(`no microphone (${err.name}): typed input only`);
    }
    await state.ctx.resume();
    connect();
  } catch (err) {
    showError(`could not start audio: ${err}`);
    setStatus("error");
    ui.start.disabled = false;
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => {
    const msg = { type: "session.start", sample_rate: RATE, output_rate: RATE };
    if (state.sessionId) msg.session_id = state.sessionId;
    const token = params.get("token");
    if (token) msg.token = token;
    send(msg);
    ui.stop.disabled = false;
  };
  ws.onmessage = (e) => {
    if (typeof e.data === "string") {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      onControl(msg);
    } else {
      onAudio(e.data);
    }
  };
  ws.onclose = (e) => {
    state.started = false;
    state.ws = null;
    ui.interrupt.disabled = true;
    ui.stop.disabled = true;
    ui.start.disabled = false;
    if (ui.status.textContent !== "error") setStatus("idle", `disconnected (${e.code})`);
    stopAudio();
  };
}

function stopAudio() {
  state.mic?.getTracks().forEach((t) => t.stop());
  state.ctx?.close();
  state.mic = state.ctx = state.capture = state.player = null;
}

ui.start.addEventListener("click", start);
ui.stop.addEventListener("click", () => {
  if (state.ws?.readyState === WebSocket.OPEN) send({ type: "audio.end" });
  state.ws?.close(1000, "bye");
});
ui.interrupt.addEventListener("click", () => {
  if (!state.started) return;
  // Stop the speakers right away; the server confirms with clear + turn.ended.
  state.player?.port.postMessage({ type: "clear_all" });
  send({ type: "interrupt" });
});
ui.form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = ui.input.value.trim();
  if (!text) return;
  ui.input.value = "";
  if (state.started) sendText(text);
  else {
    state.pendingText.push(text);
    if (!ui.start.disabled) start();
  }
});
setInterval(reportPlayback, PLAYBACK_REPORT_MS);

// For tests and curious users: the page's live state.
window.bargein = state;
