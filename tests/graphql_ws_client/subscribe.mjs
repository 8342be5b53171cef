// Test harness only: subscribe to a live OCIS with graphql-ws's own client, as the web
// frontend does, and report on stdout, one JSON object per line: {"connected": true}, then
// {"next": <payload>} for each event, and at the end {"closed": <code>} or {"error": "..."}.
//
// Usage: node subscribe.mjs <ws-url> <origin> <cookie> <query> [variables-json]
// It stops itself: when the server closes the socket, or after LIFETIME_MS at the most.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const LIFETIME_MS = 30_000;
const [url, origin, cookie, query, variables] = process.argv.slice(2);
if (!url || !origin || !cookie || !query) {
  console.error("usage: subscribe.mjs <ws-url> <origin> <cookie> <query> [variables-json]");
  process.exit(2);
}

const say = (message) => process.stdout.write(JSON.stringify(message) + "\n");

// A browser sends its Origin and cookie with the handshake; ws takes them as headers.
class BrowserLikeSocket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols, { headers: { origin, cookie } });
  }
}

const stop = setTimeout(() => {
  say({ error: "lifetime over" });
  process.exit(1);
}, LIFETIME_MS);

const client = createClient({
  url,
  webSocketImpl: BrowserLikeSocket,
  retryAttempts: 0,
  lazy: false,
  on: {
    connected: () => say({ connected: true }),
    closed: (event) => {
      say({ closed: event.code, reason: event.reason });
      clearTimeout(stop);
      process.exit(0);
    },
  },
});

client.subscribe(
  { query, variables: variables ? JSON.parse(variables) : undefined },
  {
    next: (payload) => say({ next: payload }),
    error: (error) => say({ error: String(error?.message ?? error?.code ?? error) }),
    complete: () => say({ complete: true }),
  },
);
