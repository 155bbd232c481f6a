// A small append-only log file (the plugin must not print into OpenCode's terminal UI).
import fsp from "node:fs/promises";
import path from "node:path";

const MAX_BYTES = 1_000_000;

/**
 * @param {string} file
 * @returns {(message: string) => Promise<void>}  never rejects
 */
export function createLog(file) {
  let queue = Promise.resolve();
  return (message) => {
    queue = queue.then(async () => {
      try {
        await fsp.mkdir(path.dirname(file), { recursive: true });
        const size = await fsp.stat(file).then((s) => s.size, () => 0);
        if (size > MAX_BYTES) await fsp.rename(file, `${file}.1`);
        await fsp.appendFile(file, `${new Date().toISOString()} ${message}\n`);
      } catch {
        // logging must never break syncing
      }
    });
    return queue;
  };
}
