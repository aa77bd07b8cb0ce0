// The conversation view. Everything per turn lives in a `Conversation`, one per server session
// id: a new session gets a new one (the old one stays on screen, greyed, under a divider), so
// turn 1 of a second session can never land in turn 1 of the first.

function bubble(cls, who) {
  const div = document.createElement("div");
  div.className = `msg ${cls}`;
  const label = document.createElement("span");
  label.className = "who";
  label.textContent = who;
  div.append(label);
  return div;
}

function scrollToEnd(el) {
  el.scrollIntoView({ block: "end" });
}

export class Conversation {
  constructor(root, sessionId) {
    this.sessionId = sessionId;
    this.turns = new Map(); // turn -> TurnView
    this.marks = new Map(); // turn -> latency marks (kept when the bubbles are rebuilt)
    this.el = document.createElement("div");
    this.el.className = "session";
    this.el.dataset.session = sessionId;
    root.append(this.el);
  }

  addUser(text, typed) {
    const div = bubble("user", typed ? "you (typed)" : "you");
    div.append(document.createTextNode(text));
    this.el.append(div);
    scrollToEnd(div);
    return div;
  }

  // Replace what is shown with the server's heard history (on resume).
  showHistory(history) {
    this.el.textContent = "";
    this.turns.clear();
    for (const item of history) {
      if (item.role === "user") {
        const div = bubble("user", "you");
        div.append(document.createTextNode(item.content));
        div.classList.add("from-history");
        this.el.append(div);
      } else if (item.role === "assistant") {
        const div = bubble("assistant from-history", "assistant");
        const body = document.createElement("span");
        body.className = "body spoken-all";
        body.textContent = item.content;
        div.append(body);
        if (item.interrupted) {
          div.classList.add("interrupted");
          const note = document.createElement("span");
          note.className = "note";
          note.textContent = "interrupted — only what you heard is shown";
          div.append(note);
        }
        this.el.append(div);
      }
    }
    if (this.el.lastElementChild) scrollToEnd(this.el.lastElementChild);
  }

  turn(n, played) {
    let view = this.turns.get(n);
    if (!view) {
      view = new TurnView(n, played);
      this.turns.set(n, view);
      this.el.append(view.el);
    }
    return view;
  }

  marksOf(n) {
    let m = this.marks.get(n);
    if (!m) {
      m = {};
      this.marks.set(n, m);
      while (this.marks.size > 64) this.marks.delete(this.marks.keys().next().value);
    }
    return m;
  }

  // For the latency table: [{turn, marks, status}] oldest first.
  latencyRows() {
    return [...this.marks.entries()].map(([turn, marks]) => ({ turn, marks, status: marks.status }));
  }

  // The socket dropped: turns that never ended will not end on this connection.
  cutOff() {
    for (const view of this.turns.values()) if (!view.ended) view.cutOff();
  }

  // This conversation is over (a new one replaces it); keep it readable, above a divider.
  retire(note) {
    this.el.classList.add("past");
    const divider = document.createElement("p");
    divider.className = "divider";
    divider.textContent = note;
    this.el.append(divider);
  }
}

export class TurnView {
  constructor(turn, played) {
    this.turn = turn;
    this.played = played; // () => samples of this turn played so far
    this.text = "";
    this.words = []; // word marks [{text, start, end}] in output samples
    this.spokenCount = 0;
    this.ended = null;
    this.el = bubble("assistant", `assistant · turn ${turn}`);
    this.el.dataset.turn = String(turn);
    this.body = document.createElement("span");
    this.body.className = "body";
    this.el.append(this.body);
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
    const played = this.played();
    let n = 0;
    for (const w of this.words) if (w.start < played) n++;
    if (n !== this.spokenCount) {
      this.spokenCount = n;
      this.render();
    }
  }

  end(msg) {
    this.ended = msg;
    if (msg.status === "interrupted") {
      this.el.classList.add("interrupted");
      this.note(`interrupted after ${(msg.heard_ms / 1000).toFixed(2)} s — struck-through words were never heard`);
    }
    this.render();
  }

  cutOff() {
    // What played is all that was heard; the server's history says exactly what it kept.
    this.ended = { status: "interrupted", heard: this.spokenWords() };
    this.el.classList.add("interrupted");
    this.note("cut off: the connection dropped");
    this.render();
  }

  note(text) {
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = text;
    this.el.append(note);
  }

  spokenWords() {
    return this.text.split(/\s+/).filter(Boolean).slice(0, this.spokenCount).join(" ");
  }

  render() {
    const tokens = this.text.split(/(\s+)/).filter((s) => s.length > 0);
    // Which words count as spoken: while playing, the word marks played so far; once ended,
    // exactly the words of the heard text the server reports.
    let spoken = this.spokenCount;
    if (this.ended) {
      const heard = this.ended.heard.trim() ? this.ended.heard.trim().split(/\s+/).length : 0;
      spoken = this.ended.status === "completed" ? Infinity : heard;
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
    scrollToEnd(this.el);
  }
}
