// Real-shaped OpenCode data (packages/opencode/src/session/message-v2.ts) and writers for both
// of OpenCode's stores, for the tests.
import fs from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";

export const SCHEMA = fs.readFileSync(new URL("./opencode-schema.sql", import.meta.url), "utf8");

const pad = (n) => String(n).padStart(12, "0");

/**
 * A session: a user prompt, then an assistant answer with reasoning, a completed tool call,
 * a step-finish and text. Timestamps start at `created` (epoch ms).
 */
export function makeSession({
  id = "ses_0001",
  n = 1,
  title = "Fix the flaky test",
  directory = "/home/dev/projects/demo-app",
  created = 1_767_000_000_000,
  parentID,
  turns = 1,
} = {}) {
  const info = {
    id,
    slug: "fix-the-flaky-test",
    version: "1.2.3",
    projectID: "prj_demo",
    directory,
    ...(parentID ? { parentID } : {}),
    title,
    time: { created, updated: created + turns * 10_000 },
  };
  const messages = [];
  for (let t = 0; t < turns; t++) {
    const at = created + t * 10_000;
    const userId = `msg_${pad(n * 1000 + t * 2)}u`;
    const asstId = `msg_${pad(n * 1000 + t * 2 + 1)}a`;
    const part = (messageID, k, fields) => ({ id: `prt_${messageID.slice(4)}_${k}`, sessionID: id, messageID, ...fields });
    messages.push({
      info: {
        id: userId,
        sessionID: id,
        role: "user",
        time: { created: at },
        agent: "build",
        model: { providerID: "anthropic", modelID: "claude-sonnet-4-5" },
      },
      parts: [
        part(userId, 1, { type: "text", text: `Turn ${t + 1}: please fix test_${t}` }),
        part(userId, 2, { type: "text", text: "<file contents>", synthetic: true }),
      ],
    });
    messages.push({
      info: {
        id: asstId,
        sessionID: id,
        role: "assistant",
        time: { created: at + 1000, completed: at + 4000 },
        parentID: userId,
        modelID: "claude-sonnet-4-5",
        providerID: "anthropic",
        mode: "build",
        agent: "build",
        path: { cwd: directory, root: directory },
        cost: 0.0123,
        tokens: { input: 100, output: 40, reasoning: 10, cache: { read: 2000, write: 300 } },
        finish: "stop",
      },
      parts: [
        part(asstId, 1, { type: "step-start", snapshot: "abc123" }),
        part(asstId, 2, { type: "reasoning", text: "Look at the test first.", time: { start: at + 1100, end: at + 1200 } }),
        part(asstId, 3, {
          type: "tool",
          callID: `toolu_${t}`,
          tool: "bash",
          state: {
            status: "completed",
            input: { command: `pytest tests/test_${t}.py` },
            output: "1 passed",
            title: "Run the test",
            metadata: { exit: 0 },
            time: { start: at + 1300, end: at + 2000 },
          },
        }),
        part(asstId, 4, { type: "text", text: `Fixed test_${t}.`, time: { start: at + 3000, end: at + 3900 } }),
        part(asstId, 5, {
          type: "step-finish",
          reason: "stop",
          cost: 0.0123,
          tokens: { input: 100, output: 40, reasoning: 10, cache: { read: 2000, write: 300 } },
        }),
      ],
    });
  }
  return { info, messages };
}

function writeJson(file, value) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2));
}

/** The legacy layout under <dataDir>/storage. */
export function writeJsonStorage(dataDir, sessions) {
  const root = path.join(dataDir, "storage");
  for (const { info, messages } of sessions) {
    writeJson(path.join(root, "project", `${info.projectID}.json`), { id: info.projectID, worktree: info.directory, time: info.time });
    writeJson(path.join(root, "session", info.projectID, `${info.id}.json`), info);
    for (const { info: message, parts } of messages) {
      writeJson(path.join(root, "message", info.id, `${message.id}.json`), message);
      for (const part of parts) writeJson(path.join(root, "part", message.id, `${part.id}.json`), part);
    }
  }
}

/** Insert sessions into an OpenCode database (created with the real schema when missing). */
export function writeSqlite(file, sessions, { keepOpen = false } = {}) {
  const fresh = !fs.existsSync(file);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new DatabaseSync(file);
  db.exec("PRAGMA journal_mode = WAL");
  if (fresh) db.exec(SCHEMA);
  for (const session of sessions) insertSession(db, session);
  if (!keepOpen) db.close();
  return db;
}

export function insertSession(db, { info, messages }) {
  const { id, projectID, parentID, slug, directory, title, version, time } = info;
  db.prepare(
    "INSERT OR IGNORE INTO project (id, worktree, time_created, time_updated, sandboxes) VALUES (?, ?, ?, ?, '[]')",
  ).run(projectID, directory ?? "/", time.created, time.updated);
  db.prepare(
    `INSERT OR REPLACE INTO session (id, project_id, parent_id, slug, directory, title, version, time_created, time_updated)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  ).run(id, projectID, parentID ?? null, slug, directory ?? "", title, version, time.created, time.updated);
  for (const { info: message, parts } of messages) {
    const { id: messageID, sessionID: _s, ...data } = message;
    db.prepare("INSERT OR REPLACE INTO message (id, session_id, time_created, time_updated, data) VALUES (?, ?, ?, ?, ?)").run(
      messageID,
      id,
      message.time.created,
      message.time.completed ?? message.time.created,
      JSON.stringify(data),
    );
    for (const part of parts) {
      const { id: partID, sessionID: _ps, messageID: _pm, ...partData } = part;
      db.prepare(
        "INSERT OR REPLACE INTO part (id, message_id, session_id, time_created, time_updated, data) VALUES (?, ?, ?, ?, ?, ?)",
      ).run(partID, messageID, id, message.time.created, message.time.created, JSON.stringify(partData));
    }
  }
}

/**
 * The bus events OpenCode publishes while `session` happens (shapes of @opencode-ai/sdk's
 * Event union): session.created, then per message message.updated, its parts streaming in
 * through repeated message.part.updated (text growing), the final message.updated, then
 * session.updated and session.idle.
 */
export function eventsFor({ info, messages }, { created = true } = {}) {
  const events = [];
  if (created) events.push({ type: "session.created", properties: { info: { ...info, time: { ...info.time, updated: info.time.created } } } });
  for (const { info: message, parts } of messages) {
    const { completed: _c, ...time } = message.time;
    const open = message.role === "assistant" ? { ...message, time, cost: 0, tokens: { input: 0, output: 0, reasoning: 0, cache: { read: 0, write: 0 } } } : message;
    events.push({ type: "message.updated", properties: { info: open } });
    for (const part of parts) {
      if (part.type === "text" && part.text.length > 4) {
        events.push({ type: "message.part.updated", properties: { part: { ...part, text: part.text.slice(0, 4) }, delta: part.text.slice(0, 4) } });
      }
      events.push({ type: "message.part.updated", properties: { part } });
    }
    events.push({ type: "message.updated", properties: { info: message } });
  }
  events.push({ type: "session.updated", properties: { info } });
  events.push({ type: "session.idle", properties: { sessionID: info.id } });
  return events;
}
