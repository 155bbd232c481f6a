import assert from "node:assert/strict";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { mock, test } from "node:test";
import { paths } from "../src/config.js";
import { sessionRecords } from "../src/mapping.js";
import { databaseFiles, openStores } from "../src/storage.js";
import { SCHEMA, insertSession, makeSession, writeJsonStorage, writeSqlite } from "../test-support/fixtures.js";
import { tempEnv } from "../test-support/env.js";

const OPTIONS = { syncToolCalls: true, syncThinking: false, redactSecrets: true };

async function readAll(env, onWarning) {
  const stores = await openStores({ env, onWarning });
  try {
    const list = await stores.listSessions();
    return await Promise.all(list.map(async (s) => ({ store: s.store, ...(await s.load()) })));
  } finally {
    stores.close();
  }
}

/** Loaded sessions compare equal to what was written, whatever the store. */
function plain({ info, messages }) {
  return { id: info.id, title: info.title, parentID: info.parentID, messages: messages.map((m) => ({ info: m.info, parts: m.parts })) };
}

test("the legacy JSON layout: sessions, messages and parts as OpenCode wrote them", async (t) => {
  const env = tempEnv(t);
  const a = makeSession({ id: "ses_a", n: 1, turns: 2 });
  const child = makeSession({ id: "ses_b", n: 2, parentID: "ses_a", created: 1_767_000_500_000 });
  writeJsonStorage(paths(env).opencodeDataDir, [a, child]);
  const loaded = await readAll(env);
  assert.deepEqual(loaded.map((s) => s.store), ["json", "json"]);
  assert.deepEqual(loaded.map(plain), [plain(a), plain(child)]);
  const records = sessionRecords(loaded[0], OPTIONS);
  assert.equal(records.length, 5);
  assert.equal(records[0].data.cost, 0.0246);
});

test("the SQLite database with OpenCode's schema reads back the same sessions", async (t) => {
  const env = tempEnv(t);
  const a = makeSession({ id: "ses_a", n: 1, turns: 2 });
  const child = makeSession({ id: "ses_b", n: 2, parentID: "ses_a", created: 1_767_000_500_000 });
  writeSqlite(path.join(paths(env).opencodeDataDir, "opencode.db"), [a, child]);
  const loaded = await readAll(env);
  assert.deepEqual(loaded.map((s) => s.store), ["sqlite", "sqlite"]);
  assert.deepEqual(loaded.map(plain), [plain(a), plain(child)]);
  assert.deepEqual(loaded[0].info.time, a.info.time);
  assert.equal(loaded[0].info.directory, a.info.directory);
});

test("both stores: each session once, from the store that saw it updated last (the database on a tie)", async (t) => {
  const env = tempEnv(t);
  const dataDir = paths(env).opencodeDataDir;
  const old = makeSession({ id: "ses_both", n: 1 });
  const newer = makeSession({ id: "ses_both", n: 1, turns: 2 });
  const tie = makeSession({ id: "ses_tie", n: 2 });
  const jsonOnly = makeSession({ id: "ses_json", n: 3 });
  writeJsonStorage(dataDir, [old, tie, jsonOnly]);
  writeSqlite(path.join(dataDir, "opencode.db"), [newer, { ...tie, info: { ...tie.info, title: "from sqlite" } }]);
  const loaded = await readAll(env);
  const byId = Object.fromEntries(loaded.map((s) => [s.info.id, s]));
  assert.deepEqual(Object.keys(byId).sort(), ["ses_both", "ses_json", "ses_tie"]);
  assert.equal(byId.ses_both.store, "sqlite");
  assert.equal(byId.ses_both.messages.length, 4);
  assert.equal(byId.ses_tie.info.title, "from sqlite");
  assert.equal(byId.ses_json.store, "json");
});

test("a WAL-mode database OpenCode is writing: committed rows are read, an open transaction neither shows nor blocks", async (t) => {
  const env = tempEnv(t);
  const file = path.join(paths(env).opencodeDataDir, "opencode.db");
  const writer = writeSqlite(file, [makeSession({ id: "ses_a", n: 1 })], { keepOpen: true });
  t.after(() => writer.close());
  insertSession(writer, makeSession({ id: "ses_b", n: 2 }));
  assert.ok(fs.statSync(`${file}-wal`).size > 0, "the rows are still only in the WAL");
  assert.deepEqual((await readAll(env)).map((s) => s.info.id), ["ses_a", "ses_b"]);
  writer.exec("BEGIN IMMEDIATE");
  insertSession(writer, makeSession({ id: "ses_c", n: 3 }));
  assert.deepEqual((await readAll(env)).map((s) => s.info.id), ["ses_a", "ses_b"]);
  writer.exec("COMMIT");
  assert.deepEqual((await readAll(env)).map((s) => s.info.id), ["ses_a", "ses_b", "ses_c"]);
});

test("without SQLite support the database is reported and the JSON storage still read", async (t) => {
  const env = tempEnv(t);
  const dataDir = paths(env).opencodeDataDir;
  writeJsonStorage(dataDir, [makeSession({ id: "ses_json", n: 1 })]);
  writeSqlite(path.join(dataDir, "opencode.db"), [makeSession({ id: "ses_db", n: 2 })]);
  const warnings = [];
  const noSqlite = async (name) => {
    throw new Error(`Cannot find module '${name}'`);
  };
  const stores = await openStores({ env, onWarning: (m) => warnings.push(m), importer: noSqlite });
  const ids = (await stores.listSessions()).map((s) => s.info.id);
  stores.close();
  assert.deepEqual(ids, ["ses_json"]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /opencode\.db.*needs Node\.js 22\.13\+ \(22\.5\+ with --experimental-sqlite\) or Bun/);
});

test("database files: XDG_DATA_HOME, per-channel databases, OPENCODE_DB", async (t) => {
  const env = tempEnv(t);
  const xdg = path.join(env.HOME, "xdg-data");
  const dataDir = path.join(xdg, "opencode");
  writeSqlite(path.join(dataDir, "opencode-dev.db"), [makeSession({ id: "ses_dev", n: 1 })]);
  writeSqlite(path.join(dataDir, "opencode.db"), [makeSession({ id: "ses_main", n: 2 })]);
  fs.writeFileSync(path.join(dataDir, "opencode.db-journal"), "");
  const withXdg = { ...env, XDG_DATA_HOME: xdg };
  assert.deepEqual(await databaseFiles(dataDir, withXdg), [path.join(dataDir, "opencode.db"), path.join(dataDir, "opencode-dev.db")]);
  assert.deepEqual((await readAll(withXdg)).map((s) => s.info.id).sort(), ["ses_dev", "ses_main"]);
  assert.deepEqual(await databaseFiles(dataDir, { ...withXdg, OPENCODE_DB: "opencode-dev.db" }), [path.join(dataDir, "opencode-dev.db")]);
  assert.deepEqual((await readAll(env)).length, 0, "without XDG_DATA_HOME: ~/.local/share/opencode, empty here");
});

test("a schema without session.directory: the project's worktree names the project; bad rows are skipped", async (t) => {
  const env = tempEnv(t);
  const file = path.join(paths(env).opencodeDataDir, "opencode.db");
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new DatabaseSync(file);
  db.exec(SCHEMA);
  insertSession(db, makeSession({ id: "ses_a", n: 1, directory: "/srv/worktree" }));
  db.exec("ALTER TABLE session DROP COLUMN directory");
  db.exec("INSERT INTO message (id, session_id, time_created, time_updated, data) VALUES ('msg_bad', 'ses_a', 1, 1, 'not json')");
  db.close();
  const warnings = [];
  const [session] = await readAll(env, (m) => warnings.push(m));
  assert.equal(session.info.directory, undefined);
  assert.equal(session.projectPath, "/srv/worktree");
  assert.equal(session.messages.length, 2);
  assert.deepEqual(warnings, ["skipped message msg_bad: its data is not a JSON object"]);
  assert.equal(sessionRecords(session, OPTIONS)[0].data.projectName, "worktree");
});

test("a session whose history is only in OpenCode's newer session_message table is reported, not passed off as empty", async (t) => {
  const env = tempEnv(t);
  const file = path.join(paths(env).opencodeDataDir, "opencode.db");
  writeSqlite(file, [makeSession({ id: "ses_old", n: 1 }), { ...makeSession({ id: "ses_new", n: 2 }), messages: [] }]);
  const db = new DatabaseSync(file);
  db.exec(`CREATE TABLE session_message (id text PRIMARY KEY, session_id text NOT NULL, type text NOT NULL,
           time_created integer NOT NULL, time_updated integer NOT NULL, data text NOT NULL)`);
  db.exec(`INSERT INTO session_message VALUES ('sm_1', 'ses_new', 'user', 1, 1, '{}'), ('sm_2', 'ses_new', 'assistant', 2, 2, '{}')`);
  db.close();
  const warnings = [];
  const loaded = await readAll(env, (m) => warnings.push(m));
  assert.deepEqual(loaded.map((s) => [s.info.id, s.messages.length]), [["ses_old", 2], ["ses_new", 0]]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /^session ses_new keeps its 2 messages in OpenCode's newer session_message table/);
});

test("findSession: one session by id, the database first, then the JSON files", async (t) => {
  const env = tempEnv(t);
  const dataDir = paths(env).opencodeDataDir;
  writeJsonStorage(dataDir, [makeSession({ id: "ses_json", n: 1 })]);
  writeSqlite(path.join(dataDir, "opencode.db"), [makeSession({ id: "ses_db", n: 2, turns: 2 })]);
  const stores = await openStores({ env });
  t.after(() => stores.close());
  assert.equal((await stores.findSession("ses_db")).messages.length, 4);
  assert.equal((await stores.findSession("ses_json")).messages.length, 2);
  assert.equal(await stores.findSession("ses_missing"), null);
  assert.equal(await stores.findSession("../../etc/passwd"), null);
});

test("JSON storage: a big session is read a few files at a time; a file that cannot be read fails the session", async (t) => {
  const env = tempEnv(t);
  const session = makeSession({ turns: 60 });
  writeJsonStorage(paths(env).opencodeDataDir, [session]);
  const readFile = fsp.readFile;
  let open = 0;
  let peak = 0;
  let broken = null;
  mock.method(fsp, "readFile", async (file, ...rest) => {
    open += 1;
    peak = Math.max(peak, open);
    try {
      await new Promise((resolve) => setImmediate(resolve));
      if (broken && String(file).endsWith(broken)) throw Object.assign(new Error("EMFILE: too many open files"), { code: "EMFILE" });
      return await readFile(file, ...rest);
    } finally {
      open -= 1;
    }
  });
  t.after(() => mock.restoreAll());
  const [loaded] = await readAll(env);
  assert.equal(loaded.messages.length, 120);
  assert.ok(peak <= 16, `${peak} files open at once`);
  broken = `${session.messages[7].parts[0].id}.json`;
  await assert.rejects(readAll(env), /EMFILE/, "not a session that silently lacks a part");
});
