// OpenCode's SQLite database (drizzle tables in packages/opencode/src/session/session.sql.ts and
// project/project.sql.ts): session(id, project_id, parent_id, slug, directory, title, version,
// time_created, time_updated, …), message(id, session_id, time_created, time_updated, data JSON
// without id/sessionID), part(id, message_id, session_id, time_created, time_updated, data JSON
// without id/sessionID/messageID). Opened read-only while OpenCode may be writing it (WAL mode).

/**
 * A read-only handle with `all(sql, ...params)` over bun:sqlite (inside OpenCode, which runs on
 * Bun) or node:sqlite (Node 22.5+).
 * @param {string} file
 * @param {(name: string) => Promise<any>} [importer]  module loader (tests pass a failing one)
 */
export async function openDatabase(file, importer = (name) => import(name)) {
  let db;
  if (globalThis.Bun) {
    const { Database } = await importer("bun:sqlite");
    db = new Database(file, { readonly: true });
  } else {
    let sqlite;
    try {
      sqlite = await importer("node:sqlite");
    } catch {
      throw new Error(
        `reading OpenCode's SQLite database (${file}) needs Node.js 22.13+ (22.5+ with --experimental-sqlite) ` +
          `or Bun; this is Node.js ${process.versions.node}`,
      );
    }
    db = new sqlite.DatabaseSync(file, { readOnly: true });
  }
  // A read-only connection still takes part in WAL locking: it sees every transaction OpenCode
  // has committed (checkpointed or not). Wait a little instead of failing while it writes.
  db.exec("PRAGMA busy_timeout = 5000");
  return {
    all: (sql, ...params) => db.prepare(sql).all(...params),
    exec: (sql) => db.exec(sql),
    close: () => db.close(),
  };
}

function columns(db, table) {
  return new Set(db.all(`PRAGMA table_info(${table})`).map((row) => row.name));
}

function parseData(text, what, onWarning) {
  try {
    const value = JSON.parse(text);
    if (value && typeof value === "object" && !Array.isArray(value)) return value;
  } catch {
    // reported below
  }
  onWarning?.(`skipped ${what}: its data is not a JSON object`);
  return null;
}

const optional = (v) => (v === null ? undefined : v);

export class SqliteStore {
  /** @param {{all: Function, exec: Function, close: Function}} db @param {string} file */
  constructor(db, file, onWarning) {
    this.db = db;
    this.file = file;
    this.onWarning = onWarning;
    const sessionColumns = columns(db, "session");
    if (!sessionColumns.has("id") || !columns(db, "message").has("data")) {
      throw new Error(`${file} has no OpenCode session/message tables`);
    }
    // Later OpenCode versions may add or drop session columns: select * and read what is there.
    const withProject = columns(db, "project").has("worktree");
    // Newer OpenCode also has a `session_message` table (its next message format). Sessions whose
    // history is only there are reported rather than synced as empty.
    this.hasSessionMessage = columns(db, "session_message").has("session_id");
    this.sessionQuery = withProject
      ? "SELECT s.*, p.worktree AS project_worktree FROM session s LEFT JOIN project p ON p.id = s.project_id"
      : "SELECT s.* FROM session s";
  }

  /** Session info in the shape of OpenCode's Session.Info, from a session row. */
  #info(row) {
    return {
      id: row.id,
      projectID: optional(row.project_id),
      parentID: optional(row.parent_id),
      slug: optional(row.slug),
      directory: optional(row.directory),
      title: optional(row.title),
      version: optional(row.version),
      time: { created: Number(row.time_created), updated: Number(row.time_updated) },
      projectWorktree: optional(row.project_worktree),
    };
  }

  listSessions() {
    return this.db.all(this.sessionQuery).map((row) => this.#info(row));
  }

  /** A session with its messages and their parts, read in one transaction (one consistent snapshot). */
  loadSession(info) {
    this.db.exec("BEGIN");
    try {
      const messages = this.db
        .all("SELECT id, data FROM message WHERE session_id = ? ORDER BY time_created, id", info.id)
        .map((row) => {
          const data = parseData(row.data, `message ${row.id}`, this.onWarning);
          return data && { info: { ...data, id: row.id, sessionID: info.id }, parts: [] };
        })
        .filter(Boolean);
      if (messages.length === 0 && this.hasSessionMessage) this.#warnNewFormat(info.id);
      const byId = new Map(messages.map((m) => [m.info.id, m]));
      for (const row of this.db.all("SELECT id, message_id, data FROM part WHERE session_id = ? ORDER BY message_id, id", info.id)) {
        const message = byId.get(row.message_id);
        const data = message && parseData(row.data, `part ${row.id}`, this.onWarning);
        if (data) message.parts.push({ ...data, id: row.id, sessionID: info.id, messageID: row.message_id });
      }
      const { projectWorktree, ...sessionInfo } = info;
      return { info: sessionInfo, messages, projectPath: info.directory ? undefined : projectWorktree };
    } finally {
      this.db.exec("COMMIT");
    }
  }

  #warnNewFormat(sessionID) {
    const [{ n }] = this.db.all("SELECT count(*) AS n FROM session_message WHERE session_id = ?", sessionID);
    if (Number(n) > 0) {
      this.onWarning?.(
        `session ${sessionID} keeps its ${n} messages in OpenCode's newer session_message table, ` +
          "which this version of opencode-sync does not read yet; only the session itself is sent",
      );
    }
  }

  findSession(sessionID) {
    const row = this.db.all(`${this.sessionQuery} WHERE s.id = ?`, sessionID)[0];
    return row ? this.loadSession(this.#info(row)) : null;
  }

  close() {
    this.db.close();
  }
}
