import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { createClient, parseRetryAfter } from "../src/client.js";
import { acquireLock } from "../src/lock.js";
import { MAX_RETRIES, Spool } from "../src/spool.js";
import { KEY, startFakeServer } from "../test-support/fake-server.js";
import { tempEnv } from "../test-support/env.js";

function message(i, extra = {}) {
  return { type: "message", data: { sessionExternalId: "ses_1", externalId: `msg_${String(i).padStart(5, "0")}`, role: "user", source: "opencode", textContent: `m${i}`, createdAt: 1_767_000_000_000 + i, ...extra } };
}
const session = { type: "session", data: { externalId: "ses_1", source: "opencode", title: "t" } };

async function setup(t, options = {}) {
  const env = tempEnv(t);
  const fake = await startFakeServer();
  t.after(() => fake.close());
  const spool = new Spool(path.join(env.HOME, "state"));
  const client = createClient({ url: fake.url, apiKey: KEY, timeoutMs: options.timeoutMs ?? 5000 });
  return { fake, spool, client };
}

const sentIds = (fake) => fake.batches().flatMap((r) => [...r.body.sessions, ...r.body.messages].map((x) => x.externalId));

test("records go out in spool order, each exactly once, and only then leave the spool", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append([session, message(1), message(2)]);
  spool.appendSync([message(3)]);
  await spool.append([message(4)]);
  assert.deepEqual(await spool.size(), { files: 3, records: 5 });
  const result = await spool.send(client);
  assert.deepEqual(result, { sent: 5, rejected: [], problems: [], stop: null });
  assert.deepEqual(sentIds(fake), ["ses_1", "msg_00001", "msg_00002", "msg_00003", "msg_00004"]);
  assert.equal(fake.batches().length, 1);
  assert.equal(fake.batches()[0].auth, `Bearer ${KEY}`);
  assert.deepEqual(await spool.size(), { files: 0, records: 0 });
  assert.equal((await spool.send(client)).sent, 0, "nothing twice");
});

test("chunks hold at most 200 records and about 1 MB", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append(Array.from({ length: 450 }, (_, i) => message(i)));
  await spool.send(client);
  assert.deepEqual(fake.batches().map((r) => r.body.messages.length), [200, 200, 50]);
  const big = "x".repeat(300_000);
  await spool.append(Array.from({ length: 7 }, (_, i) => message(1000 + i, { textContent: big })));
  await spool.send(client);
  const sizes = fake.batches().slice(3).map((r) => r.body.messages.length);
  assert.deepEqual(sizes, [3, 3, 1]);
  assert.ok(fake.batches().every((r) => r.bytes <= 1_000_000));
  assert.equal(fake.writes.size, 457);
});

test("413 halves the chunk until it fits; a single record too large is reported and dropped", async (t) => {
  const { fake, spool, client } = await setup(t);
  fake.respond = (r) => (r.path === "/sync/batch" && (r.bytes > 3000 || r.body.messages.some((m) => m.textContent === "huge")) ? { status: 413, body: { error: "Request body is too large" } } : undefined);
  await spool.append(Array.from({ length: 40 }, (_, i) => message(i, i === 17 ? { textContent: "huge" } : {})));
  const result = await spool.send(client);
  assert.equal(result.stop, null);
  assert.equal(result.sent, 39);
  assert.deepEqual(result.rejected, [{ type: "message", externalId: "msg_00017", error: "too large for the server (HTTP 413: Request body is too large)" }]);
  assert.ok(fake.batches().length > 3, "the chunk was split");
  assert.deepEqual([...fake.messages.keys()], Array.from({ length: 40 }, (_, i) => message(i).data.externalId).filter((id) => id !== "msg_00017"), "in order");
  assert.deepEqual(await spool.size(), { files: 0, records: 0 });
});

test("401/403: everything stays spooled and the stop says why; a later send delivers", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append([session, message(1)]);
  for (const status of [401, 403]) {
    fake.respond = () => ({ status, body: { error: status === 401 ? "Invalid API key" : "This key is read-only" } });
    const result = await spool.send(client);
    assert.equal(result.stop.kind, "auth");
    assert.match(result.stop.message, new RegExp(`HTTP ${status}`));
    assert.deepEqual(await spool.size(), { files: 1, records: 2 });
  }
  fake.respond = null;
  assert.equal((await spool.send(client)).sent, 2);
  assert.deepEqual([...fake.writes.values()], [1]);
});

test("server down, then back: the records wait and arrive once, in order", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append([session, message(1)]);
  await fake.stop();
  await spool.append([message(2)]);
  const down = await spool.send(client);
  assert.equal(down.stop.kind, "unreachable");
  assert.match(down.stop.message, /connection refused/);
  assert.deepEqual(await spool.size(), { files: 2, records: 3 });
  await fake.start();
  assert.equal((await spool.send(client)).sent, 3);
  assert.deepEqual(sentIds(fake), ["ses_1", "msg_00001", "msg_00002"]);
});

test("a slow server times out; records stay", async (t) => {
  const { fake, spool, client } = await setup(t, { timeoutMs: 200 });
  fake.delayMs = 1000;
  await spool.append([message(1)]);
  const started = Date.now();
  const result = await spool.send(client);
  assert.ok(Date.now() - started < 900);
  assert.equal(result.stop.kind, "unreachable");
  assert.match(result.stop.message, /no answer from http:\/\/127\.0\.0\.1:\d+ within 200 ms/);
  assert.equal((await spool.size()).records, 1);
});

test("per-item errors in a 200 are reported once and not retried", async (t) => {
  const { fake, spool, client } = await setup(t);
  fake.respond = (r) => r.path === "/sync/batch" ? { status: 200, body: { ok: true, sessions: 1, messages: 1, errors: ["messages[1]: role must be one of user, assistant (got 'robot')", "something else"] } } : undefined;
  await spool.append([session, message(1), message(2, { role: "robot" })]);
  const result = await spool.send(client);
  assert.equal(result.stop, null);
  assert.equal(result.sent, 2);
  assert.deepEqual(result.rejected, [
    { type: "message", externalId: "msg_00002", error: "role must be one of user, assistant (got 'robot')" },
    { type: "batch", externalId: "", error: "something else" },
  ]);
  assert.deepEqual(await spool.size(), { files: 0, records: 0 });
  await spool.send(client);
  assert.equal(fake.batches().length, 1);
});

test("a failure mid-way keeps only the unacknowledged records; resuming sends each once", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append(Array.from({ length: 300 }, (_, i) => message(i)));
  await spool.append(Array.from({ length: 150 }, (_, i) => message(300 + i)));
  let calls = 0;
  fake.respond = (r) => (r.path === "/sync/batch" && ++calls === 2 ? { status: 502, body: "Bad Gateway" } : undefined);
  const first = await spool.send(client);
  assert.equal(first.sent, 200);
  assert.deepEqual(first.stop, { kind: "server", message: "the server answered HTTP 502: Bad Gateway" });
  assert.deepEqual(await spool.size(), { files: 2, records: 250 });
  const second = await spool.send(client);
  assert.equal(second.sent, 250);
  assert.equal(fake.writes.size, 450);
  assert.ok([...fake.writes.values()].every((n) => n === 1), "no message written twice");
});

test("a 2xx that is not JSON is not taken as delivered", async (t) => {
  const { fake, spool, client } = await setup(t);
  fake.respond = () => ({ status: 200, body: "<html>captive portal</html>" });
  await spool.append([message(1)]);
  assert.equal((await spool.send(client)).stop.kind, "bad-response");
  assert.equal((await spool.size()).records, 1);
});

test("the send lock: a held lock stops a sender; two senders at once never send a record twice", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append(Array.from({ length: 250 }, (_, i) => message(i)));
  const lock = await acquireLock(spool.lockFile);
  const blocked = await spool.send(client);
  assert.equal(blocked.stop.kind, "locked");
  assert.equal(fake.batches().length, 0);
  await lock.release();
  fake.delayMs = 50;
  const other = new Spool(path.dirname(spool.dir));
  const [a, b] = await Promise.all([spool.send(client, { lockWaitMs: 5000 }), other.send(client, { lockWaitMs: 5000 })]);
  assert.equal(a.sent + b.sent, 250);
  assert.ok([...fake.writes.values()].every((n) => n === 1));
  assert.equal(fake.writes.size, 250);
});

test("a lock left by a dead process is taken over", async (t) => {
  const { spool, client } = await setup(t);
  const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  fs.mkdirSync(path.dirname(spool.lockFile), { recursive: true });
  fs.writeFileSync(spool.lockFile, JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), token: "old" }));
  await spool.append([message(1)]);
  const result = await spool.send(client);
  assert.equal(result.stop, null);
  assert.equal(result.sent, 1);
  assert.equal(fs.existsSync(spool.lockFile), false, "released after use");
});

test("an unreadable spool file is set aside and reported; the rest is sent", async (t) => {
  const { spool, client } = await setup(t);
  await spool.append([message(1)]);
  const [name] = await spool.files();
  fs.writeFileSync(path.join(spool.dir, name), "{truncated");
  await spool.append([message(2)]);
  const result = await spool.send(client);
  assert.equal(result.sent, 1);
  assert.equal(result.problems.length, 1);
  assert.match(result.problems[0], /unreadable, moved to .*corrupt/);
  assert.ok(fs.existsSync(path.join(spool.dir, "corrupt", name)));
});

test("a sender whose lock was taken over meanwhile (stalled past the stale time) stops and leaves the files alone", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append(Array.from({ length: 250 }, (_, i) => message(i)));
  const stalling = {
    postBatch: async (body) => {
      // While this request hangs, another process judges the lock abandoned and takes it.
      fs.writeFileSync(spool.lockFile, JSON.stringify({ pid: process.pid, host: os.hostname(), token: "other" }));
      return client.postBatch(body);
    },
  };
  const result = await spool.send(stalling);
  assert.equal(result.stop.kind, "locked");
  assert.equal(fake.batches().length, 1, "no further chunk sent without the lock");
  assert.deepEqual(await spool.size(), { files: 1, records: 250 }, "the new holder's files are not rewritten");
  assert.equal(JSON.parse(fs.readFileSync(spool.lockFile, "utf8")).token, "other", "its lock is not released");
});

// --- 429 / 503 with Retry-After -----------------------------------------------------------------

/** The first `times` batches get `status` with `headers`, the rest the fake's usual answer. */
function refuseFirst(fake, times, status, headers) {
  const refused = [];
  fake.respond = (r) => {
    if (r.path !== "/sync/batch" || refused.length >= times) return undefined;
    refused.push(Date.now());
    return { status, body: { error: "Too many sync requests" }, headers };
  };
  return refused;
}

test("a rate-limited chunk is sent again after Retry-After, and arrives once", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append([session, message(1), message(2)]);
  const refused = refuseFirst(fake, 1, 429, { "Retry-After": "1" });
  const result = await spool.send(client);
  assert.deepEqual(result, { sent: 3, rejected: [], problems: [], stop: null });
  assert.equal(fake.batches().length, 2);
  assert.ok(Date.now() - refused[0] >= 1000, "it waited the second asked for");
  assert.deepEqual([...fake.writes.entries()], [["msg_00001", 1], ["msg_00002", 1]]); // stored once
  assert.deepEqual(await spool.size(), { files: 0, records: 0 });
});

test("503 with Retry-After is retried too", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append([message(1)]);
  refuseFirst(fake, 2, 503, { "Retry-After": "0" });
  assert.equal((await spool.send(client)).sent, 1);
  assert.equal(fake.batches().length, 3);
});

test("no Retry-After, or one longer than a minute, keeps the records for the next flush", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append([message(1)]);
  for (const headers of [{}, { "Retry-After": "3600" }, { "Retry-After": "soon" }]) {
    fake.requests.length = 0;
    refuseFirst(fake, 1, 429, headers);
    const started = Date.now();
    const result = await spool.send(client);
    assert.deepEqual(result.stop, { kind: "server", message: "the server answered HTTP 429: Too many sync requests" });
    assert.ok(Date.now() - started < 1000);
    assert.equal(fake.batches().length, 1);
    assert.deepEqual(await spool.size(), { files: 1, records: 1 });
  }
});

test("a server that keeps refusing is left after a few retries", async (t) => {
  const { fake, spool, client } = await setup(t);
  await spool.append([message(1)]);
  refuseFirst(fake, 100, 429, { "Retry-After": "0" });
  assert.equal((await spool.send(client)).stop.kind, "server");
  assert.equal(fake.batches().length, MAX_RETRIES + 1);
  assert.deepEqual(await spool.size(), { files: 1, records: 1 });
});

test("Retry-After is seconds or an HTTP date", () => {
  const now = Date.parse("2026-01-20T10:00:00Z");
  assert.equal(parseRetryAfter("7", now), 7000);
  assert.equal(parseRetryAfter(" 1.5 ", now), 1500);
  assert.equal(parseRetryAfter("-3", now), 0);
  assert.equal(parseRetryAfter("Tue, 20 Jan 2026 10:01:00 GMT", now), 60_000);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now), 0);
  for (const value of [null, undefined, "", "  ", "later"]) assert.equal(parseRetryAfter(value, now), null);
});
