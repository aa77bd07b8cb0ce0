// The bargein demo page: microphone → WebSocket (protocol v1, docs/protocol.md) → speakers.
// No build step, no dependencies. Everything the server says arrives as typed JSON frames or
// binary audio frames with a 12-byte header; everything shown is derived from those.
// docs/web.md, "The page", describes what the user sees; the modules next to this one hold
// the parts with rules of their own (status pill, reconnect policy, latency, conversation, trace).

import { Conversation } from "./conversation.js";
import { renderLatency, renderTimeline } from "./latency.js";
import { closeVerdict, MAX_ATTEMPTS, reconnectDelay } from "./reconnect.js";
import { StatusModel } from "./status.js";
import { Trace } from "./trace.js";

const PROTOCOL_VERSION = 1;
const FRAME_MS = 20;
const SUPPORTED_RATES = [8000, 16000, 22050, 24000, 32000, 44100, 48000];
const AUDIO_HEADER_BYTES = 12;
const MAX_BUFFERED_BYTES = 256 * 1024; // don't queue seconds of stale mic audio in the socket
const PLAYBACK_REPORT_MS = 100;
const MAX_OUTBOX = 20;
const FLASH_MS = 4000;
// Options the server honours when it does not say (`session.started.capabilities.options`).
const DEFAULT_OPTIONS = ["voice", "rate_wpm", "pitch", "policy"];
const DEFAULT_RATE_WPM = 175;
const KEY = {
  session: "bargein.session", secret: "bargein.resume_secret", settings: "bargein.settings",
  policies: "bargein.policies", // the presets the server last offered, listed before connecting
};

const params = new URLSearchParams(location.search);
const requestedRate = Number(params.get("rate") || 24000);
const RATE = SUPPORTED_RATES.includes(requestedRate) ? requestedRate : 24000;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), notice: $("notice"), start: $("start"), stop: $("stop"),
  interrupt: $("interrupt"), mute: $("mute"), conversation: $("conversation"), live: $("live"),
  outbox: $("outbox"), form: $("text-form"), input: $("text-input"), spoken: $("spoken"),
  latency: document.querySelector("#latency tbody"), timeline: $("timeline"), error: $("error"),
  session: $("stat-session"), level: $("stat-level"), sent: $("stat-sent"),
  dropped: $("stat-dropped"), played: $("stat-played"), errors: $("stat-errors"),
  trace: $("trace"), settings: $("settings"), mic: $("set-mic"), voice: $("set-voice"),
  rate: $("set-rate"), rateOut: $("set-rate-out"), policy: $("set-policy"), apply: $("apply"),
  settingsHint: $("settings-hint"), policyAbout: $("policy-about"), sessionPolicy: $("stat-policy"),
};

const state = {
  // connection
  ws: null, conn: null, starting: false, started: false, userEnded: false, applying: false,
  attempt: 0, retryTimer: null, dropReason: null, resumeRefused: null,
  capabilities: null, outputRate: RATE,
  // audio
  ctx: null, micStream: null, micSource: null, capture: null, player: null, muted: false,
  generation: 0, // bumped on every player reset; stale worklet reports are ignored
  played: {}, reported: {}, lastAudioTurn: null,
  // conversation
  conv: null, // the Conversation of the current session id
  pending: null, // the last utterance's stamps, waiting for the turn that answers it
  typedSent: [], // typed texts sent, waiting for their turn.started
  outbox: [], // typed while not connected: [{text, el}]
  framesSent: 0, framesDropped: 0, errors: 0,
  status: new StatusModel(),
  trace: new Trace(),
};

// ------------------------------------------------------------------ status, notices, errors

function renderStatus() {
  const view = state.status.view(performance.now());
  if (ui.status.textContent !== view.text) ui.status.textContent = view.text;
  const cls = `pill ${view.name}`;
  if (ui.status.className !== cls) ui.status.className = cls;
}

let flashTimer = null;
function notice(text, { flash = false } = {}) {
  clearTimeout(flashTimer);
  ui.notice.textContent = text || "";
  if (flash) flashTimer = setTimeout(() => { if (ui.notice.textContent === text) ui.notice.textContent = ""; }, FLASH_MS);
}

function showError(text) {
  ui.error.textContent = text || "";
}

function setButtons() {
  const connected = state.started;
  const active = connected || state.retryTimer != null || (state.ws != null);
  ui.start.disabled = connected || state.starting || (state.ws != null && state.retryTimer == null);
  // The second word goes on narrow screens (style.css), so all four buttons fit at 375 px.
  const [first, rest] = state.retryTimer != null ? ["Reconnect", " now"] : ["Start", " talking"];
  if (ui.start.dataset.label !== first) {
    ui.start.dataset.label = first;
    ui.start.replaceChildren(first, Object.assign(document.createElement("span"), { className: "wide", textContent: rest }));
  }
  ui.stop.disabled = !active;
  ui.interrupt.disabled = !connected;
  ui.mute.disabled = !state.micStream;
  ui.mute.setAttribute("aria-pressed", String(state.muted));
  ui.mute.textContent = state.muted ? "Unmute" : "Mute";
  ui.apply.disabled = !connected;
}

// ------------------------------------------------------------------ settings

function loadSettings() {
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem(KEY.settings) || "{}") || {}; } catch { saved = {}; }
  ui.voice.value = typeof saved.voice === "string" ? saved.voice : "";
  ui.rate.value = String(Number.isInteger(saved.rate_wpm) ? saved.rate_wpm : DEFAULT_RATE_WPM);
  renderPolicies(typeof saved.policy === "string" ? saved.policy : "");
  ui.mic.dataset.wanted = typeof saved.mic === "string" ? saved.mic : "";
  ui.rateOut.textContent = `${ui.rate.value} wpm`;
}

function saveSettings() {
  const settings = { voice: ui.voice.value.trim(), rate_wpm: Number(ui.rate.value), policy: ui.policy.value, mic: ui.mic.value };
  localStorage.setItem(KEY.settings, JSON.stringify(settings));
}

function honoured() {
  const options = state.capabilities?.options;
  return options && typeof options === "object" ? Object.keys(options) : DEFAULT_OPTIONS;
}

// The `session.start` options from the settings; only those the server says it honours.
function sessionOptions() {
  const names = honoured();
  const options = {};
  const voice = ui.voice.value.trim();
  if (voice && names.includes("voice")) options.voice = voice;
  const rate = Number(ui.rate.value);
  if (rate !== DEFAULT_RATE_WPM && names.includes("rate_wpm")) options.rate_wpm = rate;
  if (ui.policy.value && names.includes("policy")) options.policy = ui.policy.value;
  return options;
}

// The interruption presets to offer: this server's (capabilities), else the last server's.
function knownPolicies() {
  const caps = state.capabilities;
  let known = Array.isArray(caps?.policies) ? { names: caps.policies, about: caps.policy_descriptions } : null;
  if (!known) {
    try { known = JSON.parse(localStorage.getItem(KEY.policies) || "null"); } catch { known = null; }
  }
  if (!Array.isArray(known?.names)) return { names: [], about: {} };
  const about = known.about && typeof known.about === "object" ? known.about : {};
  return { names: known.names.filter((n) => typeof n === "string"), about };
}

// Every preset with what it does; `wanted` stays selected if offered (a saved choice is kept
// until a server has said which presets it has).
function renderPolicies(wanted) {
  const { names, about } = knownPolicies();
  ui.policy.textContent = "";
  ui.policy.append(new Option("server default", ""));
  for (const name of names) {
    const text = typeof about[name] === "string" ? about[name] : "";
    const option = new Option(text ? `${name} — ${text}` : name, name);
    option.title = text;
    ui.policy.append(option);
  }
  if (wanted && !names.includes(wanted) && !state.capabilities) ui.policy.append(new Option(wanted, wanted));
  ui.policy.value = [...ui.policy.options].some((o) => o.value === wanted) ? wanted : "";
  describePolicy();
}

function describePolicy() {
  const { about } = knownPolicies();
  const name = ui.policy.value;
  ui.policyAbout.textContent = !name
    ? "Interruption: the server's default preset."
    : `Interruption: ${typeof about[name] === "string" ? about[name] : name}.`;
}

// Grey out the settings this server does not honour, and offer its own presets.
function applyCapabilities() {
  const caps = state.capabilities;
  const names = honoured();
  for (const [el, name] of [[ui.voice, "voice"], [ui.rate, "rate_wpm"], [ui.policy, "policy"]]) {
    el.disabled = !names.includes(name);
    el.title = el.disabled ? `this server does not honour '${name}'` : (caps?.options?.[name] || "");
  }
  if (Array.isArray(caps?.policies)) {
    const about = caps.policy_descriptions && typeof caps.policy_descriptions === "object" ? caps.policy_descriptions : {};
    localStorage.setItem(KEY.policies, JSON.stringify({ names: caps.policies, about }));
    renderPolicies(ui.policy.value);
  }
  ui.settingsHint.textContent = !caps
    ? "Voice, rate and interruption are sent when a session starts."
    : names.length
      ? `This server honours: ${names.join(", ")}. Changes apply when a session starts.`
      : "This server honours none of these options.";
}

async function listMicrophones() {
  if (!navigator.mediaDevices?.enumerateDevices) return;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  const wanted = ui.mic.value || ui.mic.dataset.wanted || "";
  ui.mic.textContent = "";
  ui.mic.append(new Option("browser default", ""));
  devices.forEach((d, i) => { if (d.deviceId && d.deviceId !== "default") ui.mic.append(new Option(d.label || `microphone ${i + 1}`, d.deviceId)); });
  ui.mic.value = [...ui.mic.options].some((o) => o.value === wanted) ? wanted : "";
}

// ------------------------------------------------------------------ server messages

function playedOf(turn) {
  return () => state.played[turn] || 0;
}

function currentConversation(sessionId) {
  if (!state.conv || state.conv.sessionId !== sessionId) {
    state.conv = new Conversation(ui.conversation, sessionId);
  }
  return state.conv;
}

function onSessionStarted(msg) {
  const wasReconnect = state.dropReason != null;
  const askedToResume = state.conn?.askedToResume;
  state.started = true;
  state.attempt = 0;
  state.outputRate = msg.output_rate;
  state.capabilities = msg.capabilities && typeof msg.capabilities === "object" ? msg.capabilities : null;
  sessionStorage.setItem(KEY.session, msg.session_id);
  if (typeof msg.resume_secret === "string") sessionStorage.setItem(KEY.secret, msg.resume_secret);
  resetPlayer();
  state.pending = null;
  state.typedSent = [];

  const previous = state.conv;
  const history = Array.isArray(msg.history) ? msg.history : null;
  if (previous && previous.sessionId !== msg.session_id) {
    previous.retire(
      askedToResume
        ? state.resumeRefused === "bad_resume_secret"
          ? "The server refused to resume this conversation (wrong resume secret). A new one starts below."
          : "The server no longer has this conversation (it was probably restarted). A new one starts below."
        : "Conversation ended.",
    );
  }
  const conv = currentConversation(msg.session_id);
  if (msg.resumed && history) conv.showHistory(history);

  const restored = msg.resumed && history ? ` (${history.length} earlier messages restored)` : "";
  if (wasReconnect && msg.resumed) {
    notice(`Reconnected after: ${state.dropReason} The conversation continues${restored}.`);
  } else if (wasReconnect) {
    notice(`Reconnected after: ${state.dropReason} The server did not have the earlier conversation any more, so a new one started; the earlier messages stay above, greyed out.`);
  } else if (state.applying) {
    notice(msg.resumed ? "Settings applied; the conversation continues." : "Settings applied in a new conversation.", { flash: true });
  } else if (msg.resumed) {
    notice(`Resumed your conversation${restored}.`, { flash: true });
  } else if (askedToResume) {
    notice("The server no longer had your earlier conversation, so a new one started.", { flash: true });
  } else if (!ui.notice.textContent.startsWith("Microphone") && !ui.notice.textContent.startsWith("No microphone")) {
    notice("");
  }
  state.dropReason = null;
  state.applying = false;
  state.resumeRefused = null;
  ui.session.textContent = msg.session_id + (msg.resumed ? " (resumed)" : "");
  // The preset the server runs for this session (null: its built-in settings, no preset).
  ui.sessionPolicy.textContent = typeof msg.policy === "string" ? msg.policy : "built-in";
  state.status.setConnection("connected");
  applyCapabilities();
  setButtons();
  for (const item of state.outbox.splice(0)) {
    item.el.remove();
    sendText(item.text);
  }
  refreshTurns();
}

function refreshTurns() {
  const rows = state.conv ? state.conv.latencyRows() : [];
  renderLatency(ui.latency, rows);
  renderTimeline(ui.timeline, rows);
}

function onControl(msg) {
  state.trace.received(msg);
  if (msg.v !== PROTOCOL_VERSION) {
    showError(`server speaks protocol v${msg.v}, page speaks v${PROTOCOL_VERSION}`);
    return;
  }
  state.status.onMessage(msg, performance.now());
  const conv = state.conv;
  switch (msg.type) {
    case "session.started":
      onSessionStarted(msg);
      break;
    case "speech.stopped":
      // `speech_end` (when the user really stopped) is absent on servers before it existed.
      state.pending = { speech_end: msg.speech_end ?? null, speech_stopped: msg.t ?? null };
      break;
    case "transcript.partial":
      ui.live.textContent = msg.text;
      break;
    case "transcript.final":
      ui.live.textContent = "";
      if (msg.text && msg.text.trim()) conv?.addUser(msg.text, false);
      else state.pending = null; // nothing recognised: no turn will answer it
      break;
    case "turn.started": {
      if (!conv) break;
      const marks = conv.marksOf(msg.turn);
      marks.turn_started = msg.t ?? null;
      const typed = msg.user_text != null ? state.typedSent.indexOf(msg.user_text) : -1;
      if (typed >= 0) {
        marks.typed = true;
        state.typedSent.splice(typed, 1);
      } else if (state.pending) {
        Object.assign(marks, state.pending);
      }
      state.pending = null;
      conv.turn(msg.turn, playedOf(msg.turn));
      refreshTurns();
      break;
    }
    case "assistant.text":
      conv?.turn(msg.turn, playedOf(msg.turn)).addText(msg.delta);
      break;
    case "words":
      conv?.turn(msg.turn, playedOf(msg.turn)).addWords(msg.words);
      break;
    case "turn.mark": {
      if (!conv) break;
      const marks = conv.marksOf(msg.turn);
      if (marks[msg.mark] == null) marks[msg.mark] = msg.t ?? null;
      refreshTurns();
      break;
    }
    case "status":
      if (msg.kind === "input_dropped") notice(msg.text, { flash: true });
      else ui.status.title = msg.text || "";
      break;
    case "clear":
      state.player?.port.postMessage({ type: "clear", turn: msg.turn });
      break;
    case "turn.ended": {
      if (!conv) break;
      conv.turn(msg.turn, playedOf(msg.turn)).end(msg);
      const marks = conv.marksOf(msg.turn);
      marks.status = msg.status;
      marks.ended = msg.t ?? null;
      ui.spoken.textContent = `Assistant${msg.status === "interrupted" ? " (interrupted)" : ""}: ${msg.heard}`;
      refreshTurns();
      break;
    }
    case "error":
      state.errors++;
      ui.errors.textContent = String(state.errors);
      if (msg.code === "unknown_session" || msg.code === "bad_resume_secret") {
        // Said in plain words once the new session starts; the old id is no use any more.
        state.resumeRefused = msg.code;
        sessionStorage.removeItem(KEY.session);
        sessionStorage.removeItem(KEY.secret);
      } else {
        showError(`${msg.code}: ${msg.message}`);
      }
      if (msg.fatal && state.conn) state.conn.fatal = msg.code;
      break;
    case "session.ended":
      if (state.conn) state.conn.ended = msg.reason;
      break;
    default:
      // Unknown types are ignored: servers may add message types within v1.
      break;
  }
  renderStatus();
}

function onAudio(buffer) {
  if (buffer.byteLength <= AUDIO_HEADER_BYTES) return;
  const view = new DataView(buffer);
  if (view.getUint8(0) !== 1) return;
  const turn = view.getUint32(4, true);
  const start = view.getUint32(8, true);
  const pcm = new Int16Array(buffer, AUDIO_HEADER_BYTES, (buffer.byteLength - AUDIO_HEADER_BYTES) >> 1);
  state.trace.audio(turn, start, pcm.length);
  state.lastAudioTurn = turn;
  const samples = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  state.player?.port.postMessage({ type: "audio", turn, start, samples }, [samples.buffer]);
}

function onPlayed(msg) {
  if (msg.generation !== state.generation) return; // from before the last reset
  state.played = msg.played;
  state.status.setPlaying(msg.queued > 0);
  let total = 0;
  for (const [turn, samples] of Object.entries(msg.played)) {
    total += samples;
    state.conv?.turns.get(Number(turn))?.updateSpoken();
  }
  ui.played.textContent = `${(total / state.outputRate).toFixed(2)} s`;
  ui.played.dataset.samples = String(total);
  renderStatus();
}

function resetPlayer() {
  state.generation++;
  state.played = {};
  state.reported = {};
  state.lastAudioTurn = null;
  state.status.setPlaying(false);
  state.player?.port.postMessage({ type: "reset", generation: state.generation });
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
  const full = { ...msg, v: PROTOCOL_VERSION };
  if (msg.type !== "playback") state.trace.sent(full);
  state.ws.send(JSON.stringify(full));
}

function sendText(text) {
  state.pending = null;
  state.typedSent.push(text);
  state.conv.addUser(text, true);
  send({ type: "text", text });
}

// Typed while not connected: shown as waiting, sent as soon as a session starts.
function queueText(text) {
  if (state.outbox.length >= MAX_OUTBOX) {
    notice(`Not sent: ${MAX_OUTBOX} messages are already waiting for the connection.`, { flash: true });
    return;
  }
  const el = document.createElement("div");
  el.className = "msg user queued";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = "you (typed) · waiting to send — not connected";
  el.append(who, document.createTextNode(text));
  ui.outbox.append(el);
  state.outbox.push({ text, el });
}

function failOutbox(reason) {
  for (const item of state.outbox.splice(0)) {
    item.el.classList.add("failed");
    item.el.querySelector(".who").textContent = `you (typed) · not sent — ${reason}`;
  }
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

// ------------------------------------------------------------------ audio

async function serverReachable() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 3000);
  try {
    await fetch("/healthz", { cache: "no-store", signal: abort.signal });
    return true; // any HTTP answer, even a refusal, means it is up
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

async function openMicrophone() {
  const deviceId = ui.mic.value || ui.mic.dataset.wanted || "";
  const constraints = { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 };
  if (deviceId) constraints.deviceId = { exact: deviceId };
  let stream;
  try {
    if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error("no getUserMedia"), { name: "NotSupportedError" });
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: constraints });
    } catch (err) {
      if (err.name !== "OverconstrainedError" || !deviceId) throw err;
      delete constraints.deviceId; // the chosen device is gone: take the default
      stream = await navigator.mediaDevices.getUserMedia({ audio: constraints });
    }
  } catch (err) {
    const denied = err.name === "NotAllowedError" || err.name === "SecurityError";
    state.status.mic = denied ? "denied" : "none";
    notice(
      denied
        ? "Microphone access was denied, so the assistant cannot hear you. You can type below; to talk, allow the microphone for this site in the browser, then press End and Start."
        : `No microphone (${err.name}): the assistant cannot hear you. You can type below.`,
    );
    return;
  }
  useStream(stream);
  await listMicrophones();
}

function useStream(stream) {
  state.micSource?.disconnect();
  state.micStream?.getTracks().forEach((t) => t.stop());
  state.micStream = stream;
  const [track] = stream.getAudioTracks();
  track.enabled = !state.muted;
  track.addEventListener("ended", () => {
    if (state.micStream !== stream) return;
    state.status.mic = "none";
    notice("The microphone was disconnected: the assistant cannot hear you. Choose another one in Settings.");
    renderStatus();
  });
  state.micSource = state.ctx.createMediaStreamSource(stream);
  state.micSource.connect(state.capture);
  state.status.mic = state.muted ? "muted" : "on";
}

class Unreachable extends Error {}

async function startAudio() {
  // Created before any await: the click that started us is what allows audio output.
  const ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
  state.ctx = ctx;
  // The worklets (and everything after) come from the server: if it is down, say that, not
  // "Failed to load worklet module".
  if (!(await serverReachable())) {
    stopAudio();
    throw new Unreachable(`The server at ${location.host} is unreachable. Is it running? Press Start to try again.`);
  }
  try {
    await ctx.audioWorklet.addModule("/static/capture-worklet.js");
    await ctx.audioWorklet.addModule("/static/playback-worklet.js");
  } catch (err) {
    stopAudio();
    throw new Error(`The page could not load its audio code (${err.message}). Reload the page and press Start.`);
  }
  state.player = new AudioWorkletNode(ctx, "pcm16-player", {
    numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
  });
  state.player.port.onmessage = (e) => onPlayed(e.data);
  state.player.port.postMessage({ type: "reset", generation: state.generation });
  state.player.connect(ctx.destination);
  state.capture = new AudioWorkletNode(ctx, "pcm16-capture", {
    numberOfOutputs: 1,
    processorOptions: { frameSamples: Math.round((RATE * FRAME_MS) / 1000) },
  });
  state.capture.port.onmessage = onMicFrame;
  // A silent sink keeps the capture node pulled by the graph.
  state.capture.connect(new GainNode(ctx, { gain: 0 })).connect(ctx.destination);
  await openMicrophone();
  await ctx.resume();
}

function stopAudio() {
  state.micStream?.getTracks().forEach((t) => t.stop());
  state.ctx?.close();
  state.micStream = state.micSource = state.ctx = state.capture = state.player = null;
  state.status.mic = "none";
  ui.level.value = 0;
}

// ------------------------------------------------------------------ lifecycle

async function start() {
  if (state.retryTimer != null) {
    connect(); // "Reconnect now"
    return;
  }
  if (state.starting || state.ws) return;
  state.starting = true;
  ui.start.disabled = true;
  state.userEnded = false;
  state.dropReason = null;
  showError("");
  notice("");
  state.status.setConnection("connecting");
  renderStatus();
  try {
    await startAudio();
  } catch (err) {
    state.starting = false;
    const unreachable = err instanceof Unreachable;
    state.status.setConnection("error", unreachable ? "server unreachable" : "audio failed");
    notice(err.message);
    failOutbox(unreachable ? "the server is unreachable" : "audio failed");
    renderStatus();
    setButtons();
    return;
  }
  state.starting = false;
  connect();
}

function connect() {
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  const conn = { opened: false, fatal: null, ended: null, askedToResume: false };
  state.ws = ws;
  state.conn = conn;
  state.status.setConnection(state.dropReason ? "reconnecting" : "connecting");
  ws.onopen = () => {
    conn.opened = true;
    const msg = { type: "session.start", sample_rate: RATE, output_rate: RATE, options: sessionOptions() };
    const sessionId = sessionStorage.getItem(KEY.session);
    const secret = sessionStorage.getItem(KEY.secret);
    if (sessionId) {
      msg.session_id = sessionId;
      conn.askedToResume = true;
      if (secret) msg.resume_secret = secret;
    }
    const token = params.get("token");
    if (token) msg.token = token;
    send(msg);
  };
  ws.onmessage = (e) => {
    if (state.ws !== ws) return;
    if (typeof e.data === "string") {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      onControl(msg);
    } else {
      onAudio(e.data);
    }
  };
  ws.onclose = (e) => {
    if (state.ws === ws) onClosed(conn, e.code);
  };
  renderStatus();
  setButtons();
}

function onClosed(conn, code) {
  state.ws = null;
  state.conn = null;
  state.started = false;
  state.conv?.cutOff();
  resetPlayer();
  ui.live.textContent = "";
  if (state.applying === "closing") {
    // Settings change: straight back, resuming the conversation. Once only: if that socket
    // closes too, the table below decides (a refused option must not loop).
    state.applying = "reconnecting";
    connect();
    return;
  }
  const verdict = closeVerdict({ code, userEnded: state.userEnded, fatal: conn.fatal, ended: conn.ended, opened: conn.opened });
  state.trace.note(`socket closed (${code}): ${verdict.action} — ${verdict.text}`);
  if (verdict.action === "retry" && state.ctx && state.attempt < MAX_ATTEMPTS) {
    const delay = reconnectDelay(state.attempt++);
    state.dropReason ??= verdict.text; // the cause, not the failed attempts that followed
    state.status.setConnection("reconnecting", "reconnecting…");
    notice(`${verdict.text} Reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${state.attempt} of ${MAX_ATTEMPTS}); typed messages wait until then.`);
    state.retryTimer = setTimeout(connect, delay);
    renderStatus();
    setButtons();
    return;
  }
  let text = verdict.text;
  if (verdict.action === "retry") text += ` Gave up after ${state.attempt} attempts; press Start to try again.`;
  finish(verdict.action === "ended" ? "idle" : "error", verdict.action === "ended" ? "ended" : "disconnected", text);
}

// No session any more and none coming: stop the audio, say why.
function finish(name, pill, text) {
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  state.attempt = 0;
  state.dropReason = null;
  state.applying = false;
  if (state.userEnded) {
    // End means this conversation is over: the next Start begins a new one.
    sessionStorage.removeItem(KEY.session);
    sessionStorage.removeItem(KEY.secret);
    state.conv?.retire("Conversation ended.");
    state.conv = null;
  }
  stopAudio();
  failOutbox(name === "idle" ? "the conversation ended" : "not connected");
  state.status.setConnection(name, pill);
  notice(text);
  renderStatus();
  setButtons();
}

function end() {
  state.userEnded = true;
  const { ws, conn } = state;
  if (ws) {
    if (ws.readyState === WebSocket.OPEN && state.started) send({ type: "audio.end" });
    // Done with this socket now: nothing it says later matters.
    ws.onclose = null;
    ws.close(1000, "bye");
    onClosed(conn, 1000);
  } else {
    finish("idle", "ended", "Conversation ended. Press Start for a new one.");
  }
}

function interrupt() {
  if (!state.started) {
    notice("Not connected, so there is nothing to interrupt.", { flash: true });
    return;
  }
  const turn = state.status.activeTurn ?? (state.status.playing ? state.lastAudioTurn : null);
  if (turn == null) {
    notice("Nothing is playing, so there is nothing to interrupt.", { flash: true });
    return;
  }
  // Stop the speakers right away; the server confirms with clear + turn.ended. Naming the
  // turn makes a late press a no-op instead of cancelling the next reply.
  state.player?.port.postMessage({ type: "clear_all" });
  send({ type: "interrupt", turn });
}

function toggleMute() {
  state.muted = !state.muted;
  state.micStream?.getAudioTracks().forEach((t) => { t.enabled = !state.muted; });
  if (state.micStream) state.status.mic = state.muted ? "muted" : "on";
  renderStatus();
  setButtons();
}

async function chooseMicrophone() {
  saveSettings();
  if (!state.ctx) return;
  await openMicrophone();
  renderStatus();
  setButtons();
}

function applySettings(e) {
  e.preventDefault();
  saveSettings();
  if (!state.started || !state.ws) return;
  state.applying = "closing"; // onClosed reconnects at once, resuming with the new options
  notice("Applying settings: reconnecting…");
  state.ws.close(1000, "apply settings");
}

ui.start.addEventListener("click", start);
ui.stop.addEventListener("click", end);
ui.interrupt.addEventListener("click", interrupt);
ui.mute.addEventListener("click", toggleMute);
ui.mic.addEventListener("change", chooseMicrophone);
ui.settings.addEventListener("submit", applySettings);
for (const el of [ui.voice, ui.policy]) el.addEventListener("change", saveSettings);
ui.policy.addEventListener("change", describePolicy);
ui.rate.addEventListener("input", () => { ui.rateOut.textContent = `${ui.rate.value} wpm`; });
ui.rate.addEventListener("change", saveSettings);
ui.trace.addEventListener("click", () => {
  state.trace.download(`bargein-${sessionStorage.getItem(KEY.session) || "page"}.jsonl`);
});
ui.form.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = ui.input.value.trim();
  if (!text) return;
  ui.input.value = "";
  if (state.started && state.ws?.readyState === WebSocket.OPEN) {
    sendText(text);
    return;
  }
  queueText(text);
  if (!state.ctx && !state.ws && state.retryTimer == null) start();
});
setInterval(reportPlayback, PLAYBACK_REPORT_MS);
setInterval(renderStatus, 250); // "thinking" after an utterance expires even if nothing arrives

loadSettings();
setButtons();
if (sessionStorage.getItem(KEY.session)) notice("Press Start to continue your conversation.");

// For tests and curious users: the page's live state.
window.bargein = state;
