// The durable outbox. Every record is written here first (one file per write, named so that
// file order is write order, fsynced, renamed into place), then sent in order with
// POST /sync/batch in bounded chunks; a file is deleted, or rewritten with what is left, only
// after the server acknowledged its records.
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { NetworkError, errorText } from "./client.js";
import { acquireLock } from "./lock.js";

const MAX_RECORDS = 200;
const MAX_BYTES = 1_000_000;
// A 429 (the key's rate limit) or 503 with Retry-After is waited out and the chunk sent again, a
// few times; a longer wait leaves the records spooled for the next flush instead.
export const MAX_RETRY_WAIT_MS = 60_000;
export const MAX_RETRIES = 5;

/** @typedef {{type: "session" | "message", data: Record<string, unknown>}} SpoolRecord */
/** @typedef {{type: string, externalId: string, error: string}} Rejection */
/**
 * @typedef {object} SendResult
 * @property {number} sent                  records the server stored
 * @property {Rejection[]} rejected         records the server refused (reported, not retried)
 * @property {string[]} problems            spool files that could not be read (moved to spool/corrupt)
 * @property {{kind: "locked" | "unreachable" | "auth" | "server" | "bad-response", message: string} | null} stop
 *   why sending stopped early; the unsent records stay in the spool
 */

class Stop extends Error {
  /** @param {string} kind @param {string} message @param {number | null} [retryAfterMs] */
  constructor(kind, message, retryAfterMs = null) {
    super(message);
    this.kind = kind;
    this.retryAfterMs = retryAfterMs;
  }
}

let lastStamp = 0;
let sequence = 0;

/** File names sort in write order: a never-decreasing millisecond stamp, a counter, the pid. */
function nextName() {
  lastStamp = Math.max(lastStamp, Date.now());
  sequence = (sequence + 1) % 1_000_000;
  return `${String(lastStamp).padStart(15, "0")}-${String(sequence).padStart(6, "0")}-${process.pid}.json`;
}

function fsyncDir(dir) {
  try {
    const fd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // not supported on every platform (Windows); the rename is still atomic
  }
}

export class Spool {
  /** @param {string} stateDir */
  constructor(stateDir) {
    this.dir = path.join(stateDir, "spool");
    this.lockFile = path.join(stateDir, "send.lock");
  }

  /**
   * Write records durably, as one new spool file. Resolves once they are on disk.
   * @param {SpoolRecord[]} records
   */
  async append(records) {
    if (!records.length) return null;
    await fsp.mkdir(this.dir, { recursive: true });
    const name = nextName();
    const tmp = path.join(this.dir, `.${name}.tmp`);
    const handle = await fsp.open(tmp, "w", 0o600);
    try {
      await handle.writeFile(JSON.stringify({ version: 1, records }));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, path.join(this.dir, name));
    fsyncDir(this.dir);
    return name;
  }

  /** The same, synchronously: for the moment the host process exits. @param {SpoolRecord[]} records */
  appendSync(records) {
    if (!records.length) return null;
    fs.mkdirSync(this.dir, { recursive: true });
    const name = nextName();
    const tmp = path.join(this.dir, `.${name}.tmp`);
    const fd = fs.openSync(tmp, "w", 0o600);
    try {
      fs.writeFileSync(fd, JSON.stringify({ version: 1, records }));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path.join(this.dir, name));
    fsyncDir(this.dir);
    return name;
  }

  /** Spool file names, oldest first. */
  async files() {
    try {
      return (await fsp.readdir(this.dir)).filter((name) => /^\d{15}-\d{6}-\d+\.json$/.test(name)).sort();
    } catch (error) {
      if (error.code === "ENOENT") return [];
      throw error;
    }
  }

  /** How much waits to be sent. */
  async size() {
    let records = 0;
    const files = await this.files();
    for (const name of files) {
      records += (await this.#read(name))?.length ?? 0;
    }
    return { files: files.length, records };
  }

  /** @returns {Promise<SpoolRecord[] | null>} null when missing or unreadable */
  async #read(name) {
    try {
      const value = JSON.parse(await fsp.readFile(path.join(this.dir, name), "utf8"));
      const records = value?.records;
      if (!Array.isArray(records)) return null;
      return records.every((r) => (r?.type === "session" || r?.type === "message") && r.data && typeof r.data === "object")
        ? records
        : null;
    } catch {
      return null;
    }
  }

  async #quarantine(name) {
    const corrupt = path.join(this.dir, "corrupt");
    await fsp.mkdir(corrupt, { recursive: true });
    await fsp.rename(path.join(this.dir, name), path.join(corrupt, name)).catch(() => {});
  }

  /** Replace a file with the records not yet acknowledged (same name: it keeps its place). */
  async #rewrite(file) {
    const target = path.join(this.dir, file.name);
    const tmp = path.join(this.dir, `.${file.name}.tmp`);
    const handle = await fsp.open(tmp, "w", 0o600);
    try {
      await handle.writeFile(JSON.stringify({ version: 1, records: file.records.slice(file.done) }));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, target);
    fsyncDir(this.dir);
  }

  /**
   * Send everything spooled, oldest first, under the send lock.
   * @param {{postBatch: (body: any) => Promise<import("./client.js").Reply>}} client
   * @param {{lockWaitMs?: number, maxRecords?: number, maxBytes?: number,
   *   onProgress?: (p: {sent: number, rejected: number}) => void}} [options]
   * @returns {Promise<SendResult>}
   */
  async send(client, { lockWaitMs = 0, maxRecords = MAX_RECORDS, maxBytes = MAX_BYTES, onProgress } = {}) {
    /** @type {SendResult} */
    const result = { sent: 0, rejected: [], problems: [], stop: null };
    const lock = await acquireLock(this.lockFile, { waitMs: lockWaitMs });
    if (!lock) {
      result.stop = { kind: "locked", message: "another opencode-sync process is sending right now" };
      return result;
    }
    try {
      const names = await this.files();
      let next = 0;
      /** @type {{file: {name: string, records: SpoolRecord[], done: number}, index: number}[]} */
      const queue = [];
      const fill = async () => {
        while (queue.length < maxRecords && next < names.length) {
          const name = names[next++];
          const records = await this.#read(name);
          if (!records) {
            result.problems.push(`${name}: unreadable, moved to ${path.join(this.dir, "corrupt")}`);
            await this.#quarantine(name);
            continue;
          }
          if (!records.length) {
            await fsp.unlink(path.join(this.dir, name)).catch(() => {});
            continue;
          }
          const file = { name, records, done: 0 };
          records.forEach((_, index) => queue.push({ file, index }));
        }
      };
      for (;;) {
        await fill();
        if (!queue.length) break;
        const chunk = [];
        let bytes = 32;
        while (queue.length && chunk.length < maxRecords) {
          const entry = queue[0];
          const size = Buffer.byteLength(JSON.stringify(entry.file.records[entry.index].data)) + 1;
          if (chunk.length && bytes + size > maxBytes) break;
          chunk.push(queue.shift());
          bytes += size;
        }
        let rejected;
        try {
          await assertHeld(lock);
          await lock.touch();
          rejected = await deliverRetrying(client, chunk.map((e) => e.file.records[e.index]), lock);
          // Taken over meanwhile: the new holder sends these files; rewriting or deleting them
          // now would resurrect or drop what it already handled.
          await assertHeld(lock);
        } catch (error) {
          if (!(error instanceof Stop)) throw error;
          result.stop = { kind: error.kind, message: error.message };
          break;
        }
        result.sent += chunk.length - rejected.filter((r) => r.type !== "batch").length;
        result.rejected.push(...rejected);
        for (const entry of chunk) entry.file.done = Math.max(entry.file.done, entry.index + 1);
        for (const file of new Set(chunk.map((e) => e.file))) {
          if (file.done >= file.records.length) await fsp.unlink(path.join(this.dir, file.name)).catch(() => {});
          else await this.#rewrite(file);
        }
        onProgress?.({ sent: result.sent, rejected: result.rejected.length });
      }
      return result;
    } finally {
      await lock.release();
    }
  }
}

/** deliver(), again after the wait a 429 or 503 asked for (the server upserts by externalId). */
async function deliverRetrying(client, records, lock) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await deliver(client, records);
    } catch (error) {
      const wait = error instanceof Stop ? error.retryAfterMs : null;
      if (wait === null || wait > MAX_RETRY_WAIT_MS || attempt >= MAX_RETRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
      await assertHeld(lock);
      await lock.touch();
    }
  }
}

async function assertHeld(lock) {
  if (!(await lock.held())) throw new Stop("locked", "the send lock was taken over by another opencode-sync process");
}

/**
 * POST one chunk. Resolves to the records the server refused; throws Stop when the chunk
 * must stay spooled (server down or failing, key rejected). 413 halves the chunk.
 * @param {SpoolRecord[]} records
 * @returns {Promise<Rejection[]>}
 */
async function deliver(client, records) {
  const sessions = records.filter((r) => r.type === "session");
  const messages = records.filter((r) => r.type === "message");
  let reply;
  try {
    reply = await client.postBatch({ sessions: sessions.map((r) => r.data), messages: messages.map((r) => r.data) });
  } catch (error) {
    if (error instanceof NetworkError) throw new Stop("unreachable", error.message);
    throw error;
  }
  const { status } = reply;
  if (status === 401 || status === 403) {
    throw new Stop("auth", `the server rejected the API key (HTTP ${status}: ${errorText(reply)})`);
  }
  if (status === 413) {
    if (records.length === 1) return [rejection(records[0], `too large for the server (HTTP 413: ${errorText(reply)})`)];
    const half = Math.ceil(records.length / 2);
    return [...(await deliver(client, records.slice(0, half))), ...(await deliver(client, records.slice(half)))];
  }
  if (status < 200 || status >= 300) {
    throw new Stop("server", `the server answered HTTP ${status}: ${errorText(reply)}`, reply.retryAfterMs ?? null);
  }
  if (!reply.json || typeof reply.json !== "object") {
    throw new Stop("bad-response", `the server answered HTTP ${status} without a JSON body: is this an OpenSync server?`);
  }
  const rejected = [];
  for (const error of Array.isArray(reply.json.errors) ? reply.json.errors : []) {
    const match = /^(sessions|messages)\[(\d+)\]:\s*([\s\S]*)$/.exec(String(error));
    const record = match && (match[1] === "sessions" ? sessions : messages)[Number(match[2])];
    rejected.push(record ? rejection(record, match[3]) : { type: "batch", externalId: "", error: String(error) });
  }
  return rejected;
}

function rejection(record, error) {
  return { type: record.type, externalId: String(record.data.externalId ?? ""), error };
}
