// A stand-in for the OpenSync sync API on 127.0.0.1 (node:http), which records every request
// and upserts what it receives by externalId, as the real server does.
import http from "node:http";

export const KEY = "osk_test_0123456789abcdefghijklmnop";

/**
 * @param {{apiKey?: string}} [options]
 */
export async function startFakeServer({ apiKey = KEY } = {}) {
  const fake = {
    url: "",
    port: 0,
    apiKey,
    /** @type {{method: string, path: string, auth: string | undefined, body: any, bytes: number}[]} */
    requests: [],
    sessions: new Map(),
    messages: new Map(),
    /** how many times each message externalId was written */
    writes: new Map(),
    /** Set to answer a request yourself: return {status, body, headers?} or undefined for the default. */
    respond: null,
    /** Milliseconds to wait before answering. */
    delayMs: 0,
    batches() {
      return this.requests.filter((r) => r.method === "POST" && r.path === "/sync/batch");
    },
  };

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const raw = Buffer.concat(chunks);
      let body = null;
      try {
        body = raw.length ? JSON.parse(raw.toString("utf8")) : null;
      } catch {
        body = raw.toString("utf8");
      }
      const request = { method: req.method, path: req.url, auth: req.headers.authorization, body, bytes: raw.length };
      fake.requests.push(request);
      const send = (status, value, headers = {}) => {
        const text = typeof value === "string" ? value : JSON.stringify(value);
        res.writeHead(status, { "Content-Type": typeof value === "string" ? "text/plain" : "application/json", ...headers });
        res.end(text);
      };
      if (fake.delayMs) await new Promise((r) => setTimeout(r, fake.delayMs));
      const custom = fake.respond && (await fake.respond(request));
      if (custom) return send(custom.status, custom.body, custom.headers);
      if (req.method === "GET" && req.url === "/health") return send(200, { status: "ok", timestamp: Date.now() });
      if (req.headers.authorization !== `Bearer ${fake.apiKey}`) return send(401, { error: "Invalid API key" });
      if (req.method === "GET" && req.url === "/sync/sessions/list") return send(200, { sessionIds: [...fake.sessions.keys()] });
      if (req.method === "POST" && req.url === "/sync/batch") {
        for (const s of body.sessions ?? []) fake.sessions.set(s.externalId, { ...fake.sessions.get(s.externalId), ...s });
        for (const m of body.messages ?? []) {
          fake.messages.set(m.externalId, m);
          fake.writes.set(m.externalId, (fake.writes.get(m.externalId) ?? 0) + 1);
          if (!fake.sessions.has(m.sessionExternalId)) fake.sessions.set(m.sessionExternalId, { externalId: m.sessionExternalId });
        }
        return send(200, { ok: true, sessions: (body.sessions ?? []).length, messages: (body.messages ?? []).length, errors: [] });
      }
      return send(404, { error: "Not found" });
    });
  });

  const listen = (port) =>
    new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve(server.address().port);
      });
    });

  fake.port = await listen(0);
  fake.url = `http://127.0.0.1:${fake.port}`;
  /** Stop answering (connections are refused) until start(). */
  fake.stop = () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  /** Listen again, on the same port. */
  fake.start = () => listen(fake.port);
  fake.close = fake.stop;
  return fake;
}
