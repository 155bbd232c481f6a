// A throw-away HOME for one test: every path the package uses derives from the env it is given.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** @param {import("node:test").TestContext} t */
export function tempEnv(t, extra = {}) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "opencode-sync-test-"));
  t.after(() => fs.rmSync(home, { recursive: true, force: true }));
  return { HOME: home, ...extra };
}

/** Collects what a CLI run prints. */
export function capture() {
  const out = [];
  const err = [];
  return {
    io: { stdout: { write: (s) => out.push(s) }, stderr: { write: (s) => err.push(s) } },
    get out() {
      return out.join("");
    },
    get err() {
      return err.join("");
    },
  };
}

/** Poll `check` until it returns a truthy value (which is returned), or fail after `timeoutMs`. */
export async function waitFor(check, { timeoutMs = 5000, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
