import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { paths, saveConfig } from "../src/config.js";
import { main } from "../src/cli.js";
import { createLiveSync } from "../src/live.js";
import * as pluginModule from "../src/plugin.js";
import { Spool } from "../src/spool.js";
import { KEY, startFakeServer } from "../test-support/fake-server.js";
import { eventsFor, makeSession, writeSqlite } from "../test-support/fixtures.js";
import { capture, tempEnv, waitFor } from "../test-support/env.js";

const FAST = { debounceMs: 30, maxWaitMs: 200, retryBaseMs: 50, retryMaxMs: 200, startDelayMs: 10_000, requestTimeoutMs: 2000 };

/** After hooks run in registration order: dispose first, while the server and HOME still exist. */
async function setup(t, options = {}) {
  let sync;
  t.after(() => sync.dispose());
  const fake = await startFakeServer();
  t.after(() => fake.close());
  const env = tempEnv(t, { OPENSYNC_URL: fake.url, OPENSYNC_API_KEY: KEY });
  sync = createLiveSync({ env, ...FAST, ...options });
  const spool = new Spool(paths(env).stateDir);
  return { fake, env, sync, spool };
}

function feed(sync, events) {
  const started = performance.now();
  for (const event of events) sync.event({ event });
  return performance.now() - started;
}

const log = (env) => fs.readFileSync(paths(env).logFile, "utf8");

test("the module exports only plugin functions, as OpenCode's loader calls every export", async (t) => {
  assert.deepEqual(Object.keys(pluginModule), ["OpenSyncPlugin"]);
  const env = tempEnv(t);
  const saved = { ...process.env };
  t.after(() => {
    process.env = saved;
  });
  process.env.HOME = env.HOME;
  delete process.env.OPENSYNC_URL;
  delete process.env.OPENSYNC_API_KEY;
  const hooks = await pluginModule.OpenSyncPlugin({ client: {}, project: { id: "prj" }, directory: "/tmp", worktree: "/tmp", $: () => {} });
  assert.equal(typeof hooks.event, "function");
  for (const event of [undefined, null, { type: "session.idle" }, { type: "message.updated", properties: { info: 5 } }]) {
    await hooks.event({ event });
  }
  await hooks.event(undefined);
  await hooks.dispose();
});

test("events → records on session.idle: the session with totals and every message once, original times", async (t) => {
  const { fake, sync } = await setup(t);
  const session = makeSession({ turns: 2 });
  feed(sync, eventsFor(session));
  await waitFor(() => fake.messages.size === 4 && fake.sessions.get("ses_0001")?.cost, { what: "the session on the server" });
  const stored = fake.sessions.get("ses_0001");
  assert.equal(stored.source, "opencode");
  assert.equal(stored.title, "Fix the flaky test");
  assert.equal(stored.createdAt, session.info.time.created);
  assert.equal(stored.cost, 0.0246);
  assert.deepEqual([...fake.messages.values()].map((m) => m.createdAt), session.messages.map((m) => m.info.time.created));
  assert.ok([...fake.writes.values()].every((n) => n === 1), "each message written once");
});

test("without session.idle, a debounced flush still syncs", async (t) => {
  const { fake, sync } = await setup(t);
  const session = makeSession();
  feed(sync, eventsFor(session).slice(0, -1));
  await waitFor(() => fake.messages.size === 2, { what: "the debounced flush" });
});

test("server down: events keep flowing without waiting, records spool, and a retry timer delivers them", async (t) => {
  const { fake, sync, spool } = await setup(t);
  await fake.stop();
  const session = makeSession({ turns: 2 });
  const ms = feed(sync, eventsFor(session));
  assert.ok(ms < 50, `handling ${eventsFor(session).length} events took ${ms} ms`);
  await waitFor(async () => (await spool.size()).records === 5, { what: "the spool" });
  await fake.start();
  await waitFor(() => fake.messages.size === 4, { what: "the retry" });
  await waitFor(async () => (await spool.size()).records === 0, { what: "an empty spool" });
  assert.ok([...fake.writes.values()].every((n) => n === 1));
});

test("a rejected key keeps the records and says so in the log", async (t) => {
  const { fake, env, sync, spool } = await setup(t);
  fake.apiKey = "osk_another_key_altogether_000000";
  feed(sync, eventsFor(makeSession()));
  await waitFor(() => fs.existsSync(paths(env).logFile) && /rejected the API key \(HTTP 401/.test(log(env)), { what: "the log line" });
  assert.equal((await spool.size()).records, 3);
  fake.apiKey = KEY;
  await waitFor(() => fake.messages.size === 2, { what: "delivery once the key works" });
});

test("not configured: nothing is spooled; after login everything since start is sent", async (t) => {
  let sync;
  t.after(() => sync.dispose());
  const fake = await startFakeServer();
  t.after(() => fake.close());
  const env = tempEnv(t);
  sync = createLiveSync({ env, ...FAST });
  feed(sync, eventsFor(makeSession()));
  await waitFor(() => fs.existsSync(paths(env).logFile) && /not configured/.test(log(env)), { what: "the log line" });
  assert.equal((await new Spool(paths(env).stateDir).size()).records, 0);
  await saveConfig({ url: fake.url, apiKey: KEY }, env);
  sync.event({ event: { type: "session.idle", properties: { sessionID: "ses_0001" } } });
  await waitFor(() => fake.messages.size === 2 && fake.sessions.has("ses_0001"), { what: "the late sync" });
});

test("a session resumed after OpenCode restarted: totals include its history from OpenCode's database", async (t) => {
  const { fake, env, sync } = await setup(t);
  const session = makeSession({ turns: 3 });
  const history = { info: session.info, messages: session.messages.slice(0, 4) };
  writeSqlite(path.join(paths(env).opencodeDataDir, "opencode.db"), [history]);
  const newTurn = { info: session.info, messages: session.messages.slice(4) };
  feed(sync, eventsFor(newTurn, { created: false }));
  await waitFor(() => fake.sessions.get("ses_0001")?.cost, { what: "the session" });
  assert.equal(fake.sessions.get("ses_0001").cost, 0.0369);
  assert.equal(fake.sessions.get("ses_0001").promptTokens, 300);
  assert.deepEqual([...fake.messages.keys()], session.messages.slice(4).map((m) => m.info.id), "only the new turn is sent");
});

test("a resumed session is not marked synced: `opencode-sync sync` still backfills its older messages", async (t) => {
  const { fake, env, sync } = await setup(t);
  const session = makeSession({ turns: 3 });
  writeSqlite(path.join(paths(env).opencodeDataDir, "opencode.db"), [session]);
  feed(sync, eventsFor({ info: session.info, messages: session.messages.slice(4) }, { created: false }));
  await waitFor(() => fake.messages.size === 2, { what: "the new turn" });
  const c = capture();
  assert.equal(await main(["sync"], { env, ...c.io, lockWaitMs: 2000 }), 0, c.err);
  assert.deepEqual([...fake.messages.keys()].sort(), session.messages.map((m) => m.info.id).sort());
});

test("when the host exits before a flush, pending records are spooled synchronously", async (t) => {
  const env = tempEnv(t, { OPENSYNC_URL: "http://127.0.0.1:9", OPENSYNC_API_KEY: KEY });
  const script = `
    import { createLiveSync } from ${JSON.stringify(new URL("../src/live.js", import.meta.url).href)};
    import { eventsFor, makeSession } from ${JSON.stringify(new URL("../test-support/fixtures.js", import.meta.url).href)};
    const sync = createLiveSync({ env: process.env, debounceMs: 60000, maxWaitMs: 60000, startDelayMs: 60000 });
    await new Promise((r) => setTimeout(r, 200)); // the config is read at start
    for (const event of eventsFor(makeSession()).slice(0, -1)) sync.event({ event });
    process.exit(0);
  `;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, ...env }, encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  const spool = new Spool(paths(env).stateDir);
  assert.equal((await spool.size()).records, 3);
});

test("dispose spools what is pending and tries to send it", async (t) => {
  const { fake, sync } = await setup(t, { debounceMs: 60_000, maxWaitMs: 60_000 });
  feed(sync, eventsFor(makeSession()).slice(0, -1));
  await sync.dispose();
  assert.equal(fake.messages.size, 2);
});
