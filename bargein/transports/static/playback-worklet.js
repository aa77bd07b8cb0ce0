// Assistant playback: a queue of PCM chunks per turn, flushed at once on "clear".
// Reports how many samples of each turn have actually been rendered, so the server can tell
// what the user heard (the `playback` message).
const REPORT_EVERY = 0.05; // seconds of audio-thread time between reports

class Pcm16Player extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // {turn, start, data: Float32Array, offset}
    this.played = new Map(); // turn -> samples rendered
    this.cleared = new Set(); // turns flushed: late chunks of them are dropped
    this.dirty = false;
    this.lastReport = 0;
    this.generation = 0; // the page's player generation (a "reset" per session)
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    if (msg.type === "audio") {
      if (this.cleared.has(msg.turn)) return;
      this.queue.push({ turn: msg.turn, start: msg.start, data: msg.samples, offset: 0 });
    } else if (msg.type === "clear") {
      this.cleared.add(msg.turn);
      if (this.cleared.size > 256) this.cleared.delete(this.cleared.values().next().value);
      this.queue = this.queue.filter((c) => c.turn !== msg.turn);
      this.report(true);
    } else if (msg.type === "reset") {
      this.generation = msg.generation;
      // A new session: its turn numbers may repeat the old one's, so forget everything.
      this.queue = [];
      this.played.clear();
      this.cleared.clear();
      this.report(true);
    } else if (msg.type === "clear_all") {
      for (const c of this.queue) this.cleared.add(c.turn);
      this.queue = [];
      this.report(true);
    }
  }

  report(force) {
    if (!this.dirty && !force) return;
    this.dirty = false;
    this.lastReport = currentTime;
    const queued = this.queue.reduce((n, c) => n + c.data.length - c.offset, 0);
    const played = Object.fromEntries(this.played);
    this.port.postMessage({ type: "played", generation: this.generation, played, queued });
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    while (i < out.length && this.queue.length > 0) {
      const chunk = this.queue[0];
      const take = Math.min(out.length - i, chunk.data.length - chunk.offset);
      out.set(chunk.data.subarray(chunk.offset, chunk.offset + take), i);
      chunk.offset += take;
      i += take;
      if (!this.played.has(chunk.turn) && this.played.size >= 64) {
        this.played.delete(this.played.keys().next().value); // keep reports small
      }
      this.played.set(chunk.turn, chunk.start + chunk.offset);
      this.dirty = true;
      if (chunk.offset === chunk.data.length) this.queue.shift();
    }
    out.fill(0, i); // underrun: silence
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (currentTime - this.lastReport >= REPORT_EVERY) this.report(false);
    return true;
  }
}

registerProcessor("pcm16-player", Pcm16Player);
