import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Readable } from "node:stream";
import { test } from "node:test";
import { main } from "../src/cli.js";
import { paths } from "../src/config.js";
import { acquireLock } from "../src/lock.js";
import { Spool } from "../src/spool.js";
import { KEY, startFakeServer } from "../test-support/fake-server.js";
import { capture, tempEnv } from "../test-support/env.js";
import { insertSession, makeSession, writeJsonStorage, writeSqlite } from "../test-support/fixtures.js";

async function run(env, argv, extra = {}) {
  const c = capture();
  const code = await main(argv, { env, ...c.io, lockWaitMs: 300, ...extra });
  return { code, out: c.out, err: c.err };
}

async function server(t) {
  const fake = await startFakeServer();
  t.after(() => fake.close());
  return fake;
}

test("login checks /health and the key, then saves the config (0600)", async (t) => {
  const fake = await server(t);
  const env = tempEnv(t);
  const { code, out } = await run(env, ["login", "--url", `${fake.url}/`, "--api-key", KEY]);
  assert.equal(code, 0);
  assert.match(out, /Logged in: the key works \(0 of your sessions are on the server\)/);
  const file = paths(env).configFile;
  assert.deepEqual(JSON.parse(fs.readFileSync(file, "utf8")), { url: fake.url, apiKey: KEY });
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(fake.requests.map((r) => [r.method, r.path, r.auth]), [
    ["GET", "/health", undefined],
    ["GET", "/sync/sessions/list", `Bearer ${KEY}`],
  ]);
});

test("login reads the answers from piped stdin", async (t) => {
  const fake = await server(t);
  const env = tempEnv(t);
  const { code, out } = await run(env, ["login"], { stdin: Readable.from([`${fake.url}\n${KEY}\n`]) });
  assert.equal(code, 0, out);
  assert.match(out, /OpenSync server URL/);
  assert.equal(JSON.parse(fs.readFileSync(paths(env).configFile, "utf8")).apiKey, KEY);
});

test("login failures are explained and save nothing", async (t) => {
  const fake = await server(t);
  const gone = await server(t);
  await gone.stop();
  const env = tempEnv(t);
  const cases = [
    [["--url", fake.url, "--api-key", "osk_wrong_key_000000000000000000000"], /the server rejected the API key \(HTTP 401: Invalid API key\)/],
    [["--url", fake.url, "--api-key", "sk-not-an-opensync-key"], /API keys start with osk_/],
    [["--url", "ftp://example.com", "--api-key", KEY], /not an http\(s\) URL/],
    [["--url", gone.url, "--api-key", KEY], /cannot connect to http:\/\/127\.0\.0\.1:\d+ \(connection refused: is the server running\?\)/],
  ];
  for (const [args, message] of cases) {
    const { code, err } = await run(env, ["login", ...args]);
    assert.equal(code, 1);
    assert.match(err, message);
  }
  fake.respond = (r) => (r.path === "/health" ? { status: 404, body: "<h1>Not Found</h1>" } : undefined);
  const { err } = await run(env, ["login", "--url", fake.url, "--api-key", KEY]);
  assert.match(err, /\/health did not answer like an OpenSync server \(HTTP 404/);
  assert.equal(fs.existsSync(paths(env).configFile), false);
});

test("logout removes the config and points at the upstream credentials file", async (t) => {
  const env = tempEnv(t);
  fs.mkdirSync(path.dirname(paths(env).legacyCredentialsFile), { recursive: true });
  fs.writeFileSync(paths(env).legacyCredentialsFile, JSON.stringify({ convexUrl: "http://x", apiKey: "osk_x" }));
  fs.mkdirSync(path.dirname(paths(env).configFile), { recursive: true });
  fs.writeFileSync(paths(env).configFile, "{}");
  const { code, out } = await run(env, ["logout"]);
  assert.equal(code, 0);
  assert.match(out, /Removed .*config\.json/);
  assert.match(out, /credentials\.json .* still read as a fallback/);
  assert.match((await run(env, ["logout"])).out, /Not logged in/);
});

test("status: connection, synced sessions, last delivery, spool", async (t) => {
  const fake = await server(t);
  const env = tempEnv(t, { OPENSYNC_URL: fake.url, OPENSYNC_API_KEY: KEY });
  writeJsonStorage(paths(env).opencodeDataDir, [makeSession()]);
  assert.equal((await run(env, ["sync"])).code, 0);
  await new Spool(paths(env).stateDir).append([{ type: "message", data: { sessionExternalId: "s", externalId: "m" } }]);
  const { code, out } = await run(env, ["status"]);
  assert.equal(code, 0, out);
  assert.match(out, new RegExp(`Server: +${fake.url} \\(from the environment\\)`));
  assert.match(out, /API key: +osk_test…mnop \(from the environment\)/);
  assert.match(out, /Connection: ok \(1 of your sessions on the server\)/);
  assert.match(out, /Synced: +1 sessions from this machine; last delivery .* \(3 records\)/);
  assert.match(out, /Spool: +1 records in 1 files waiting/);
  assert.match(out, /OpenCode: +.*storage; no SQLite database/);
  await fake.stop();
  const down = await run(env, ["status"]);
  assert.equal(down.code, 1);
  assert.match(down.out, /Connection: FAILED: cannot connect/);
});

test("sync: backfills JSON and SQLite sessions; --new, --all and --force pick the right ones", async (t) => {
  const fake = await server(t);
  const env = tempEnv(t, { OPENSYNC_URL: fake.url, OPENSYNC_API_KEY: KEY });
  const dataDir = paths(env).opencodeDataDir;
  const parent = makeSession({ id: "ses_json", n: 1, turns: 2 });
  const child = makeSession({ id: "ses_child", n: 2, parentID: "ses_json", title: "Explore (@explore subagent)", created: 1_767_000_005_000 });
  const fromDb = makeSession({ id: "ses_db", n: 3, created: 1_767_100_000_000 });
  writeJsonStorage(dataDir, [parent, child]);
  const dbFile = path.join(dataDir, "opencode.db");
  writeSqlite(dbFile, [fromDb]);

  let r = await run(env, ["sync"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /3 sessions \(2 from JSON files, 1 from SQLite\)/);
  assert.match(r.out, /\[2\/3\] ses_child "Explore \(@explore subagent\)" \(subagent\): 2 messages/);
  assert.match(r.out, /Sending 11 records/);
  assert.match(r.out, /Done: 3 sessions spooled, 11 records sent, 0 refused, 0 left in the spool\./);
  assert.equal(fake.messages.size, 8);
  assert.deepEqual(fake.sessions.get("ses_json"), {
    externalId: "ses_json", source: "opencode", title: "Fix the flaky test", projectPath: "/home/dev/projects/demo-app",
    projectName: "demo-app", model: "claude-sonnet-4-5", provider: "anthropic", promptTokens: 200, completionTokens: 100,
    reasoningTokens: 20, cacheReadTokens: 4000, cacheCreationTokens: 600, cost: 0.0246,
    modelUsage: [{ model: "claude-sonnet-4-5", provider: "anthropic", inputTokens: 200, outputTokens: 100, reasoningTokens: 20,
      cacheReadTokens: 4000, cacheWriteTokens: 600 }],
    durationMs: 20000, createdAt: 1_767_000_000_000,
  });

  r = await run(env, ["sync", "--new"]);
  assert.match(r.out, /0 to sync/);
  assert.match(r.out, /Nothing to send\./);
  r = await run(env, ["sync", "--all"]);
  assert.match(r.out, /0 to sync \(new or changed\)/);

  // OpenCode adds a turn to the database session.
  const db = new DatabaseSync(dbFile);
  const grown = makeSession({ id: "ses_db", n: 3, created: 1_767_100_000_000, turns: 2 });
  insertSession(db, grown);
  db.close();
  assert.match((await run(env, ["sync", "--new"])).out, /0 to sync/);
  r = await run(env, ["sync", "--all"]);
  assert.match(r.out, /1 to sync/);
  assert.match(r.out, /ses_db "Fix the flaky test": 4 messages/);
  assert.equal(fake.messages.size, 10);
  assert.equal(fake.sessions.get("ses_db").cost, 0.0246);

  // A session the server lost (or never got) is sent again by --all.
  fake.sessions.delete("ses_child");
  assert.match((await run(env, ["sync", "--all"])).out, /1 to sync/);

  const before = fake.batches().length;
  r = await run(env, ["sync", "--force"]);
  assert.match(r.out, /3 to sync \(all, forced\)/);
  assert.ok(fake.batches().length > before);
  assert.equal(fake.messages.size, 10, "re-sent, still one of each");
});

test("sync with the server down keeps everything for the next run", async (t) => {
  const fake = await server(t);
  const env = tempEnv(t, { OPENSYNC_URL: fake.url, OPENSYNC_API_KEY: KEY });
  writeJsonStorage(paths(env).opencodeDataDir, [makeSession()]);
  await fake.stop();
  let r = await run(env, ["sync"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /Stopped: cannot connect .* The unsent records stay in the spool/);
  assert.match(r.out, /3 left in the spool/);
  await fake.start();
  r = await run(env, ["sync"]);
  assert.equal(r.code, 0);
  assert.match(r.out, /0 to sync/);
  assert.match(r.out, /Sending 3 records/);
  assert.equal(fake.messages.size, 2);
});

test("sync waits for a sender that holds the lock, then gives up and keeps the records", async (t) => {
  const fake = await server(t);
  const env = tempEnv(t, { OPENSYNC_URL: fake.url, OPENSYNC_API_KEY: KEY });
  writeJsonStorage(paths(env).opencodeDataDir, [makeSession()]);
  const lock = await acquireLock(new Spool(paths(env).stateDir).lockFile);
  const r = await run(env, ["sync"]);
  await lock.release();
  assert.equal(r.code, 1);
  assert.match(r.err, /another opencode-sync process is sending right now/);
  assert.equal(fake.batches().length, 0);
  assert.equal((await run(env, ["sync"])).code, 0);
  assert.equal(fake.messages.size, 2);
});

test("sync refuses to run unconfigured; unknown commands print the usage", async (t) => {
  const env = tempEnv(t);
  const r = await run(env, ["sync"]);
  assert.equal(r.code, 1);
  assert.match(r.err, /not configured: run `opencode-sync login`/);
  const bad = await run(env, ["frobnicate"]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /Unknown command: frobnicate[\s\S]*Usage: opencode-sync/);
  assert.match((await run(env, ["sync", "--all", "--force"])).err, /choose one of/);
});
