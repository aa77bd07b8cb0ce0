// When a socket closes: reconnect or not, after how long, and what to tell the user. Pure.

export const MAX_ATTEMPTS = 30;
const BASE_MS = 500;
const CAP_MS = 10_000;

// Exponential backoff with ±20 % jitter (so many tabs do not return in lockstep); `attempt`
// counts from 0. `random` is injectable for tests.
export function reconnectDelay(attempt, random = Math.random) {
  const base = Math.min(CAP_MS, BASE_MS * 2 ** attempt);
  return Math.round(base * (0.8 + 0.4 * random()));
}

// Fatal error codes after which reconnecting cannot help (docs/protocol.md).
const FINAL = {
  session_taken_over:
    "This conversation was continued in another tab or window, so this page let go of it. Press Start to take it back here.",
  unauthorized: "The server needs a token: open the page with ?token=… in the address.",
  bad_field: "The server refused these settings (see the error below). Change them and press Start.",
  too_many_errors: "The server closed the connection after too many rejected messages.",
  closed: "The server closed the connection after a protocol error.",
  protocol_error: "The server closed the connection after a protocol error.",
};

// Decide what a close means. `c`: {code, userEnded, fatal (last fatal error code or null),
// ended (session.ended reason or null), opened (the socket ever opened)}.
// Returns {action: "ended" | "stop" | "retry", text}.
export function closeVerdict(c) {
  if (c.userEnded) return { action: "ended", text: "Conversation ended. Press Start for a new one." };
  if (c.fatal && FINAL[c.fatal]) return { action: "stop", text: FINAL[c.fatal] };
  if (c.code === 4000) return { action: "stop", text: FINAL.session_taken_over };
  if (c.code === 1008 || c.code === 1009 || c.code === 1003) {
    return { action: "stop", text: `The server refused the connection (close code ${c.code}).` };
  }
  if (c.ended && c.ended !== "shutting_down" && c.fatal == null) {
    return { action: "ended", text: `The server ended the conversation (${c.ended}). Press Start for a new one.` };
  }
  if (c.fatal === "shutting_down" || c.code === 1001 || c.code === 1012) {
    return { action: "retry", text: "The server is restarting." };
  }
  if (c.fatal === "server_busy" || c.code === 1013) {
    return { action: "retry", text: "The server is busy (too many sessions)." };
  }
  if (c.fatal === "session_failed" || c.code === 1011) {
    return { action: "retry", text: "The session failed on the server." };
  }
  if (!c.opened) return { action: "retry", text: "The server is unreachable." };
  return { action: "retry", text: "The connection to the server dropped." };
}
