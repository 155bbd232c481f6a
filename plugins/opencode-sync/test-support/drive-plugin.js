// Drives the real plugin module as OpenCode does, for end-to-end tests: load it, call the
// plugin function with OpenCode's plugin input, then hand it bus events.
//
// stdin, one JSON object per line:  {"event": {...}}  or  {"dispose": true}
// stdout, one line per input:       {"ok": true, "ms": <time the hook took>} or {"ok": false, "error": "..."}
// Settings come from the environment (HOME, XDG_*, OPENSYNC_URL, OPENSYNC_API_KEY).
import readline from "node:readline";
import { OpenSyncPlugin } from "../src/plugin.js";

// The parts of OpenCode's plugin input this test does not run: the SDK client and Bun's shell.
const unavailable = (what) => () => {
  throw new Error(`${what} is not available in this test`);
};
const input = {
  client: new Proxy({}, { get: (_, name) => unavailable(`client.${String(name)}`) }),
  project: { id: "prj_e2e", worktree: process.cwd() },
  directory: process.cwd(),
  worktree: process.cwd(),
  serverUrl: new URL("http://127.0.0.1:4096"),
  $: unavailable("$"),
};

const hooks = await OpenSyncPlugin(input);
const reply = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

for await (const line of readline.createInterface({ input: process.stdin, terminal: false })) {
  if (!line.trim()) continue;
  const message = JSON.parse(line);
  const started = performance.now();
  try {
    if (message.dispose) await hooks.dispose();
    else await hooks.event({ event: message.event });
    reply({ ok: true, ms: performance.now() - started });
  } catch (error) {
    reply({ ok: false, error: String(error?.stack ?? error) });
  }
  if (message.dispose) break;
}
