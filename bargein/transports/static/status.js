// The status pill as a pure model: feed it what the connection, the microphone, the server and
// the speakers say; `view()` is what the pill shows. No DOM, no timers (the page owns those),
// so the browser test can drive it directly.

export const AWAIT_TURN_MS = 4000; // "thinking" after an utterance lasts at most this long

export class StatusModel {
  constructor() {
    this.conn = "idle"; // idle | connecting | connected | reconnecting | error
    this.connText = null; // plain words for idle/reconnecting/error
    this.mic = "none"; // on | muted | none | denied
    this.resetSession();
  }

  // A new socket: nothing of the previous one's turn state survives.
  resetSession() {
    this.userSpeaking = false; // between speech.started and speech.stopped
    this.awaitingSince = null; // page ms of the speech.stopped no turn has answered yet
    this.activeTurn = null; // turn started and not ended
    this.playing = false; // assistant audio queued or playing in the page
  }

  setConnection(conn, text = null) {
    this.conn = conn;
    this.connText = text;
    if (conn !== "connected") this.resetSession();
  }

  // One server control message (docs/protocol.md); `now` is page ms (performance.now()).
  onMessage(msg, now) {
    switch (msg.type) {
      case "speech.started":
        this.userSpeaking = true;
        this.awaitingSince = null;
        break;
      case "speech.stopped":
        this.userSpeaking = false;
        this.awaitingSince = now;
        break;
      case "transcript.final":
        // An utterance that recognised as nothing gets no turn.
        if (!msg.text || !msg.text.trim()) this.awaitingSince = null;
        break;
      case "turn.started":
        this.awaitingSince = null;
        this.activeTurn = msg.turn;
        break;
      case "turn.mark":
        // The talk-over was not speech: the paused reply continues, no new turn follows.
        if (msg.mark === "false_interruption" || msg.mark === "output_resumed") {
          this.awaitingSince = null;
        }
        break;
      case "turn.ended":
        if (this.activeTurn === msg.turn) this.activeTurn = null;
        break;
      default:
        break;
    }
  }

  setPlaying(playing) {
    this.playing = playing;
  }

  view(now) {
    if (this.conn !== "connected") {
      const words = { idle: "idle", connecting: "connecting…", reconnecting: "reconnecting…", error: "error" };
      return { name: this.conn, text: this.connText || words[this.conn] };
    }
    // The user talking wins over everything: a cancelled turn does not make us "listening".
    if (this.userSpeaking) return { name: "hearing", text: "hearing you" };
    if (this.playing) return { name: "speaking", text: "speaking" };
    const awaiting = this.awaitingSince != null && now - this.awaitingSince < AWAIT_TURN_MS;
    if (this.activeTurn != null || awaiting) return { name: "thinking", text: "thinking" };
    if (this.mic === "on") return { name: "listening", text: "listening" };
    if (this.mic === "muted") return { name: "muted", text: "muted — type or unmute" };
    if (this.mic === "denied") return { name: "nomic", text: "no microphone — type instead" };
    return { name: "nomic", text: "ready — type a message" };
  }
}
