// OpenCode's legacy JSON storage: <data>/storage/{session/<projectID>/<id>.json,
// message/<sessionID>/<id>.json, part/<messageID>/<id>.json, project/<id>.json}.
import fs from "node:fs/promises";
import path from "node:path";

async function listDir(dir) {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (error.code === "ENOENT" || error.code === "ENOTDIR") return [];
    throw error;
  }
}

// Open files at a time: a session can have thousands of message and part files, and reading
// them all at once runs out of file descriptors (EMFILE).
const PARALLEL = 16;

async function mapLimit(items, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
  return out;
}

/**
 * A JSON object file, or null when it is gone or not a JSON object (OpenCode may be writing it).
 * Other read errors throw when `strict`: a message or part that could not be read must not be
 * taken as absent, or the session would count as synced without it.
 */
async function readJsonFile(file, onWarning, strict = false) {
  let text;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (error) {
    if (error.code === "ENOENT") return null;
    if (strict) throw new Error(`cannot read ${file}: ${error.message}`);
    onWarning?.(`skipped ${file}: ${error.message}`);
    return null;
  }
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch (error) {
    onWarning?.(`skipped ${file}: ${error.message}`);
    return null;
  }
}

/** All `<dir>/*.json` objects, each with `id` defaulting to its file name (as OpenCode's own migration does). */
async function readObjects(dir, onWarning, strict = false) {
  const entries = (await listDir(dir)).filter((e) => e.isFile() && e.name.endsWith(".json"));
  const objects = await mapLimit(entries, async (entry) => {
    const value = await readJsonFile(path.join(dir, entry.name), onWarning, strict);
    return value && { ...value, id: typeof value.id === "string" ? value.id : entry.name.slice(0, -5) };
  });
  return objects.filter(Boolean);
}

export class JsonStore {
  /** @param {string} storageDir  <OpenCode data>/storage */
  constructor(storageDir, onWarning) {
    this.dir = storageDir;
    this.onWarning = onWarning;
  }

  /** Session infos (metadata only). */
  async listSessions() {
    const sessions = [];
    for (const project of await listDir(path.join(this.dir, "session"))) {
      if (!project.isDirectory()) continue;
      for (const info of await readObjects(path.join(this.dir, "session", project.name), this.onWarning)) {
        sessions.push({ ...info, projectID: info.projectID ?? project.name });
      }
    }
    return sessions;
  }

  /** The project's worktree, for sessions that name no directory. */
  async #worktree(projectID) {
    if (typeof projectID !== "string") return undefined;
    const project = await readJsonFile(path.join(this.dir, "project", `${projectID}.json`), this.onWarning);
    return typeof project?.worktree === "string" ? project.worktree : undefined;
  }

  /** A session with its messages and their parts. */
  async loadSession(info) {
    const messages = await readObjects(path.join(this.dir, "message", info.id), this.onWarning, true);
    const withParts = [];
    for (const message of messages) {
      withParts.push({
        info: { ...message, sessionID: info.id },
        parts: (await readObjects(path.join(this.dir, "part", message.id), this.onWarning, true)).map((part) => ({
          ...part,
          sessionID: info.id,
          messageID: message.id,
        })),
      });
    }
    return { info, messages: withParts, projectPath: info.directory ? undefined : await this.#worktree(info.projectID) };
  }

  /** One session by id, or null. */
  async findSession(sessionID) {
    if (!/^[\w.-]+$/.test(sessionID)) return null;
    for (const project of await listDir(path.join(this.dir, "session"))) {
      if (!project.isDirectory()) continue;
      const file = path.join(this.dir, "session", project.name, `${sessionID}.json`);
      const info = await readJsonFile(file, this.onWarning);
      if (info) return this.loadSession({ ...info, id: sessionID, projectID: info.projectID ?? project.name });
    }
    return null;
  }
}
