// A cross-process lock file, so that the plugin inside OpenCode and a `opencode-sync sync`
// never send (or rewrite) the same spool files at the same time.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";

// A holder refreshes the file while it works; one untouched for this long is abandoned.
const STALE_MS = 10 * 60 * 1000;

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === "EPERM";
  }
}

/** The lock file's content and age, or null when there is none. */
async function readHolder(file) {
  let text, stat;
  try {
    [text, stat] = await Promise.all([fs.readFile(file, "utf8"), fs.stat(file)]);
  } catch {
    return null;
  }
  let holder = null;
  try {
    holder = JSON.parse(text); // empty while its writer is still writing it
  } catch {
    // judged by age alone
  }
  return { text, holder, mtimeMs: stat.mtimeMs };
}

function abandoned(found) {
  const { holder, mtimeMs } = found;
  if (Date.now() - mtimeMs > STALE_MS) return true;
  return holder?.host === os.hostname() && Number.isInteger(holder?.pid) && !alive(holder.pid);
}

/**
 * Take the lock, waiting up to `waitMs`. Resolves to a handle with `touch()`, `held()` and `release()`,
 * or null when another live process keeps it.
 * @param {string} file
 * @param {{waitMs?: number, pollMs?: number}} [options]
 */
export async function acquireLock(file, { waitMs = 0, pollMs = 200 } = {}) {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const token = `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const content = JSON.stringify({ pid: process.pid, host: os.hostname(), token, since: Date.now() });
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await fs.writeFile(file, content, { flag: "wx" });
      return {
        touch: () => fs.utimes(file, new Date(), new Date()).catch(() => {}),
        /** Still ours? A holder stalled past STALE_MS (a suspended laptop) may have lost it. */
        held: async () => (await readHolder(file))?.holder?.token === token,
        release: async () => {
          const found = await readHolder(file);
          if (found?.holder?.token === token) await fs.unlink(file).catch(() => {});
        },
      };
    } catch (error) {
      if (error.code !== "EEXIST") throw error;
    }
    const found = await readHolder(file);
    if (!found) continue; // released meanwhile
    if (abandoned(found)) {
      // Break it by renaming (only one process wins the rename), then make sure what we moved
      // aside is the abandoned lock and not one taken meanwhile; put that one back.
      const aside = `${file}.${token}`;
      try {
        await fs.rename(file, aside);
        const moved = await readHolder(aside);
        if (moved && moved.text !== found.text) await fs.link(aside, file).catch(() => {});
        await fs.unlink(aside).catch(() => {});
      } catch {
        // someone else got there first
      }
      continue;
    }
    if (Date.now() >= deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
