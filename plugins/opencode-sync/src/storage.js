// Both of OpenCode's local stores, merged: the legacy JSON files and the SQLite database that
// newer versions use (OpenCode copies the JSON into the database once and leaves the files).
import fs from "node:fs/promises";
import path from "node:path";
import { paths } from "./config.js";
import { JsonStore } from "./storage-json.js";
import { SqliteStore, openDatabase } from "./storage-sqlite.js";

/**
 * OpenCode's database files: $OPENCODE_DB (absolute, or relative to the data folder), else
 * opencode.db and the per-channel opencode-<channel>.db files (packages/opencode/src/storage/db.ts).
 * @param {string} dataDir
 * @param {Record<string, string | undefined>} env
 */
export async function databaseFiles(dataDir, env) {
  if (env.OPENCODE_DB && env.OPENCODE_DB !== ":memory:") {
    const file = path.isAbsolute(env.OPENCODE_DB) ? env.OPENCODE_DB : path.join(dataDir, env.OPENCODE_DB);
    return (await exists(file)) ? [file] : [];
  }
  let names;
  try {
    names = await fs.readdir(dataDir);
  } catch {
    return [];
  }
  return names
    .filter((name) => /^opencode(-[A-Za-z0-9._-]+)?\.db$/.test(name))
    .sort((a, b) => (a === "opencode.db" ? -1 : b === "opencode.db" ? 1 : a.localeCompare(b)))
    .map((name) => path.join(dataDir, name));
}

async function exists(file) {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * @typedef {object} LocalSession
 * @property {any} info          session info (id, title, directory, parentID, time…)
 * @property {"json" | "sqlite"} store
 * @property {() => Promise<{info: any, messages: {info: any, parts: any[]}[], projectPath?: string}>} load
 */

/**
 * Open every store found. Problems with one store (an unreadable database, SQLite not
 * available in this runtime) are reported through `onWarning` and leave the others readable.
 * @param {{env?: Record<string, string | undefined>, onWarning?: (message: string) => void, importer?: (name: string) => Promise<any>}} [options]
 */
export async function openStores({ env = process.env, onWarning, importer } = {}) {
  const dataDir = paths(env).opencodeDataDir;
  const json = new JsonStore(path.join(dataDir, "storage"), onWarning);
  const sqlite = [];
  for (const file of await databaseFiles(dataDir, env)) {
    try {
      sqlite.push(new SqliteStore(await openDatabase(file, importer), file, onWarning));
    } catch (error) {
      onWarning?.(error.message);
    }
  }
  return {
    dataDir,
    databases: sqlite.map((s) => s.file),

    /**
     * Every session, once: a session in several stores is read from the one that saw it
     * updated last (the database on a tie).
     * @returns {Promise<LocalSession[]>}
     */
    async listSessions() {
      /** @type {Map<string, LocalSession>} */
      const byId = new Map();
      const offer = (candidate) => {
        const current = byId.get(candidate.info.id);
        const newer = (candidate.info.time?.updated ?? 0) - (current?.info.time?.updated ?? 0);
        if (!current || newer > 0 || (newer === 0 && candidate.store === "sqlite")) byId.set(candidate.info.id, candidate);
      };
      for (const info of await json.listSessions()) offer({ info, store: "json", load: () => json.loadSession(info) });
      for (const store of sqlite) {
        try {
          for (const info of store.listSessions()) offer({ info, store: "sqlite", load: async () => store.loadSession(info) });
        } catch (error) {
          onWarning?.(`could not read ${store.file}: ${error.message}`);
        }
      }
      return [...byId.values()].sort((a, b) => (a.info.time?.created ?? 0) - (b.info.time?.created ?? 0));
    },

    /** One session with its messages from whichever store has it (the database first), or null. */
    async findSession(sessionID) {
      for (const store of sqlite) {
        const found = store.findSession(sessionID);
        if (found) return found;
      }
      return json.findSession(sessionID);
    },

    close() {
      for (const store of sqlite) store.close();
    },
  };
}
