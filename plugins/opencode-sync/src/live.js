// The live side: OpenCode events → tracker → spool → server. Event handling only touches
// memory; everything else runs later on unref'd timers, async, with timeouts, and never throws.
import { createClient } from "./client.js";
import { loadConfig, paths } from "./config.js";
import { createLog } from "./log.js";
import { Spool } from "./spool.js";
import { SyncState } from "./state.js";
import { openStores } from "./storage.js";
import { Tracker } from "./tracker.js";

const HISTORY_ATTEMPTS = 3;

// One process "exit" listener for every live sync in the process (OpenCode loads plugins once
// per project instance): each spools what is still pending, synchronously.
const pendingAtExit = new Set();
let exitHooked = false;
function onProcessExit() {
  for (const spoolNow of pendingAtExit) spoolNow();
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * @param {object} [options]
 * @param {Record<string, string | undefined>} [options.env]
 * @param {number} [options.debounceMs]     quiet time after the last change before syncing
 * @param {number} [options.maxWaitMs]      sync at least this often while changes keep coming
 * @param {number} [options.retryBaseMs]    first retry after a failed send; doubles up to retryMaxMs
 * @param {number} [options.retryMaxMs]
 * @param {number} [options.startDelayMs]   send what earlier runs left in the spool this soon after start
 * @param {number} [options.requestTimeoutMs]
 * @param {(sessionID: string) => Promise<any>} [options.findStoredSession]  a session from OpenCode's storage
 */
export function createLiveSync({
  env = process.env,
  debounceMs = 2000,
  maxWaitMs = 15_000,
  retryBaseMs = 5000,
  retryMaxMs = 5 * 60_000,
  startDelayMs = 3000,
  requestTimeoutMs = 30_000,
  findStoredSession,
} = {}) {
  const where = paths(env);
  const tracker = new Tracker();
  const spool = new Spool(where.stateDir);
  const state = new SyncState(where.stateDir);
  const log = createLog(where.logFile);
  const historyAttempts = new Map();
  const readStored =
    findStoredSession ??
    (async (sessionID) => {
      const stores = await openStores({ env, onWarning: (message) => void log(message) });
      try {
        return await stores.findSession(sessionID);
      } finally {
        stores.close();
      }
    });

  /** @type {import("./config.js").Config | null} */
  let config = null;
  let debounce = null;
  let firstPending = 0;
  let retry = null;
  let failures = 0;
  let running = null;
  let again = false;
  let disposed = false;
  let lastProblem = "";

  const later = (fn, ms) => {
    const timer = setTimeout(fn, ms);
    timer.unref?.();
    return timer;
  };
  const configured = () => Boolean(config?.url && config?.apiKey);

  function schedule() {
    if (disposed) return;
    const now = Date.now();
    firstPending ||= now;
    clearTimeout(debounce);
    debounce = later(() => void flush(), Math.max(0, Math.min(debounceMs, firstPending + maxWaitMs - now)));
  }

  function scheduleRetry(escalate) {
    if (disposed) return;
    if (escalate) failures += 1;
    clearTimeout(retry);
    retry = later(() => void flush(), Math.min(retryMaxMs, retryBaseMs * 2 ** Math.max(0, failures - 1)));
  }

  function report(problem) {
    if (problem !== lastProblem) void log(problem);
    lastProblem = problem;
  }

  async function loadHistory() {
    for (const sessionID of tracker.needingHistory()) {
      try {
        tracker.addHistory(sessionID, await withTimeout(readStored(sessionID), 15_000, "reading OpenCode's storage"));
      } catch (error) {
        const attempts = (historyAttempts.get(sessionID) ?? 0) + 1;
        historyAttempts.set(sessionID, attempts);
        void log(`could not read session ${sessionID} from OpenCode's storage: ${error?.message ?? error}`);
        // Without its history the session's totals are left to `opencode-sync sync`.
        if (attempts >= HISTORY_ATTEMPTS) tracker.addHistory(sessionID, null);
      }
    }
  }

  async function send(timeoutMs) {
    const client = createClient({ url: config.url, apiKey: config.apiKey, timeoutMs });
    const result = await spool.send(client);
    for (const r of result.rejected) void log(`the server refused ${r.type} ${r.externalId}: ${r.error}`);
    for (const problem of result.problems) void log(problem);
    if (result.sent) await state.setLastSync({ time: Date.now(), sent: result.sent });
    if (result.stop) {
      report(`kept in the spool for later: ${result.stop.message}`);
      scheduleRetry(result.stop.kind !== "locked");
    } else {
      if (lastProblem) report("sending works again");
      failures = 0;
      clearTimeout(retry);
    }
  }

  async function flushOnce() {
    config = await loadConfig(env);
    if (!configured()) {
      report("not configured (run `opencode-sync login`): nothing is synced");
      return;
    }
    await loadHistory();
    const drained = tracker.drain(config);
    if (drained.records.length) {
      await spool.append(drained.records);
      drained.commit();
      await state.mark(drained.touched);
    }
    await send(requestTimeoutMs);
  }

  /** Spool what changed and send the spool. Concurrent calls share one run (plus one rerun). */
  function flush() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        clearTimeout(debounce);
        firstPending = 0;
        try {
          await flushOnce();
        } catch (error) {
          void log(`sync failed: ${error?.stack ?? error}`);
          scheduleRetry(true);
        }
      } while (again && !disposed);
    })().finally(() => {
      running = null;
    });
    return running;
  }

  // If the host exits before a debounced flush ran, spool the rest synchronously.
  const spoolNow = () => {
    if (!configured()) return;
    try {
      const drained = tracker.drain(config);
      spool.appendSync(drained.records);
      drained.commit();
      state.markSync(drained.touched);
    } catch {
      // exiting: nothing left to report to
    }
  };
  pendingAtExit.add(spoolNow);
  if (!exitHooked) {
    process.on("exit", onProcessExit);
    exitHooked = true;
  }
  loadConfig(env).then(
    (loaded) => (config ??= loaded),
    (error) => void log(`config: ${error?.message ?? error}`),
  );
  const start = later(() => void flush(), startDelayMs);

  return {
    /** The OpenCode `event` hook body: memory only, never throws, never waits. */
    event(input) {
      try {
        const result = tracker.apply(input?.event);
        if (result?.idle) void flush();
        else if (result?.changed) schedule();
      } catch (error) {
        void log(`event ignored: ${error?.stack ?? error}`);
      }
    },

    /** Stop the timers, spool what is pending and try one quick send. */
    async dispose() {
      if (disposed) return;
      disposed = true;
      for (const timer of [debounce, retry, start]) clearTimeout(timer);
      pendingAtExit.delete(spoolNow);
      try {
        await running;
        config = await loadConfig(env);
        if (!configured()) return;
        const drained = tracker.drain(config);
        if (drained.records.length) {
          await spool.append(drained.records);
          drained.commit();
          await state.mark(drained.touched);
        }
        await send(5000);
      } catch (error) {
        void log(`dispose: ${error?.stack ?? error}`);
      }
    },
  };
}
