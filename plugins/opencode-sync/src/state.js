// What this machine has synced: per session, the OpenCode update time it had when its records
// were spooled (one small file each, so the plugin and the CLI never overwrite each other's
// entries), and when the spool was last delivered.
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";

export class SyncState {
  /** @param {string} stateDir */
  constructor(stateDir) {
    this.dir = path.join(stateDir, "synced");
    this.lastSyncFile = path.join(stateDir, "last-sync.json");
  }

  #file(sessionID) {
    return path.join(this.dir, `${encodeURIComponent(sessionID)}.json`);
  }

  /** @param {{id: string, updated?: number}[]} sessions */
  async mark(sessions) {
    if (!sessions.length) return;
    await fsp.mkdir(this.dir, { recursive: true });
    const at = Date.now();
    await Promise.all(sessions.map((s) => writeAtomic(this.#file(s.id), { updated: s.updated, spooledAt: at })));
  }

  /** @param {{id: string, updated?: number}[]} sessions */
  markSync(sessions) {
    if (!sessions.length) return;
    fs.mkdirSync(this.dir, { recursive: true });
    for (const s of sessions) {
      const file = this.#file(s.id);
      fs.writeFileSync(`${file}.tmp`, JSON.stringify({ updated: s.updated, spooledAt: Date.now() }));
      fs.renameSync(`${file}.tmp`, file);
    }
  }

  /** @returns {Promise<Map<string, {updated?: number, spooledAt?: number}>>} */
  async all() {
    const entries = new Map();
    let names;
    try {
      names = await fsp.readdir(this.dir);
    } catch (error) {
      if (error.code === "ENOENT") return entries;
      throw error;
    }
    for (const name of names.filter((n) => n.endsWith(".json"))) {
      try {
        entries.set(decodeURIComponent(name.slice(0, -5)), JSON.parse(await fsp.readFile(path.join(this.dir, name), "utf8")));
      } catch {
        // a damaged entry only means the session counts as not synced yet
      }
    }
    return entries;
  }

  /** @param {{time: number, sent: number}} info */
  async setLastSync(info) {
    await fsp.mkdir(path.dirname(this.lastSyncFile), { recursive: true });
    await writeAtomic(this.lastSyncFile, info);
  }

  /** @returns {Promise<{time: number, sent: number} | null>} */
  async lastSync() {
    try {
      return JSON.parse(await fsp.readFile(this.lastSyncFile, "utf8"));
    } catch {
      return null;
    }
  }
}

async function writeAtomic(file, value) {
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify(value));
  await fsp.rename(tmp, file);
}
