// opencode-sync login | logout | status | sync [--all | --new | --force]
import fsp from "node:fs/promises";
import path from "node:path";
import readline from "node:readline";
import { parseArgs } from "node:util";
import { createClient, errorText } from "./client.js";
import { loadConfig, maskKey, normalizeUrl, paths, removeConfig, saveConfig } from "./config.js";
import { createLog } from "./log.js";
import { sessionRecords } from "./mapping.js";
import { Spool } from "./spool.js";
import { SyncState } from "./state.js";
import { openStores } from "./storage.js";

const HELP = `Usage: opencode-sync <command>

  login [--url URL] [--api-key KEY]   check the server and the key, then save them
  logout                              forget the saved URL and key
  status                              connection, what was synced, what waits in the spool
  sync [--new | --all | --force]      backfill from OpenCode's local storage, then send
      --new     sessions never synced from this machine (the default)
      --all     every session, except those the server has and that did not change since
      --force   every session, again

Settings: ~/.config/opencode-sync/config.json, overridden by OPENSYNC_URL and OPENSYNC_API_KEY.`;

/**
 * @typedef {object} Io
 * @property {Record<string, string | undefined>} env
 * @property {{write: (s: string) => any}} stdout
 * @property {{write: (s: string) => any}} stderr
 * @property {NodeJS.ReadableStream & {isTTY?: boolean}} stdin
 * @property {number} [lockWaitMs]
 */

const FROM = { env: "environment", file: "config file", legacy: "~/.opensync/credentials.json" };

/**
 * @param {string[]} argv
 * @param {Partial<Io>} [io]
 * @returns {Promise<number>} exit code
 */
export async function main(argv, io = {}) {
  const ctx = {
    env: io.env ?? process.env,
    stdin: io.stdin ?? process.stdin,
    lockWaitMs: io.lockWaitMs ?? 60_000,
    out: (line = "") => (io.stdout ?? process.stdout).write(`${line}\n`),
    err: (line) => (io.stderr ?? process.stderr).write(`${line}\n`),
  };
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "login":
        return await login(rest, ctx);
      case "logout":
        return await logout(ctx);
      case "status":
        return await status(ctx);
      case "sync":
        return await sync(rest, ctx);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        ctx.out(HELP);
        return command === undefined ? 1 : 0;
      default:
        ctx.err(`Unknown command: ${command}\n\n${HELP}`);
        return 1;
    }
  } catch (error) {
    ctx.err(`Error: ${error?.message ?? error}`);
    return 1;
  }
}

/** Answers to prompts: from the terminal, or one per line from piped stdin. */
function prompter(stdin, out) {
  const rl = readline.createInterface({ input: stdin, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  const ask = async (question) => {
    out(question);
    const { value, done } = await lines.next();
    return done ? "" : String(value).trim();
  };
  return { ask, close: () => rl.close() };
}

/** Check that `url` is an OpenSync server and that `apiKey` is accepted: the number of your sessions there. */
async function verify(url, apiKey) {
  const client = createClient({ url, apiKey, timeoutMs: 15_000 });
  let reply = await client.health();
  if (reply.status !== 200 || reply.json?.status !== "ok") {
    throw new Error(`${url}/health did not answer like an OpenSync server (HTTP ${reply.status}: ${errorText(reply)})`);
  }
  reply = await client.listSessions();
  if (reply.status === 401 || reply.status === 403) {
    throw new Error(`the server rejected the API key (HTTP ${reply.status}: ${errorText(reply)})`);
  }
  if (reply.status !== 200 || !Array.isArray(reply.json?.sessionIds)) {
    throw new Error(`GET ${url}/sync/sessions/list failed (HTTP ${reply.status}: ${errorText(reply)})`);
  }
  return reply.json.sessionIds;
}

async function login(args, ctx) {
  const { values } = parseArgs({ args, options: { url: { type: "string" }, "api-key": { type: "string" } } });
  const prompts = values.url && values["api-key"] ? null : prompter(ctx.stdin, ctx.out);
  let url;
  let apiKey;
  try {
    url = normalizeUrl(values.url ?? (await prompts.ask("OpenSync server URL (e.g. http://127.0.0.1:8000):")));
    apiKey = (values["api-key"] ?? (await prompts.ask("API key (osk_…, from Settings → API keys):"))).trim();
  } finally {
    prompts?.close();
  }
  if (!url || !/^https?:\/\/[^/]/.test(url)) throw new Error(`not an http(s) URL: ${url ?? "(empty)"}`);
  try {
    new URL(url);
  } catch {
    throw new Error(`not a valid URL: ${url}`);
  }
  if (!apiKey.startsWith("osk_")) throw new Error("OpenSync API keys start with osk_ (create one under Settings → API keys)");
  ctx.out(`Checking ${url} …`);
  const sessionIds = await verify(url, apiKey);
  const file = await saveConfig({ url, apiKey }, ctx.env);
  ctx.out(`Logged in: the key works (${sessionIds.length} of your sessions are on the server). Saved to ${file}`);
  if (ctx.env.OPENSYNC_URL || ctx.env.OPENSYNC_API_KEY) {
    ctx.out("Note: OPENSYNC_URL / OPENSYNC_API_KEY are set in this environment and take precedence over the file.");
  }
  return 0;
}

async function logout(ctx) {
  const where = paths(ctx.env);
  ctx.out((await removeConfig(ctx.env)) ? `Removed ${where.configFile}` : "Not logged in (no config file).");
  if (await fsp.access(where.legacyCredentialsFile).then(() => true, () => false)) {
    ctx.out(`Note: ${where.legacyCredentialsFile} (the upstream plugin's credentials) is still read as a fallback; delete it to stop syncing.`);
  }
  return 0;
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "never";
}

async function status(ctx) {
  const config = await loadConfig(ctx.env);
  const where = paths(ctx.env);
  const state = new SyncState(where.stateDir);
  const spool = new Spool(where.stateDir);
  let ok = true;
  ctx.out(`Server:     ${config.url ?? "(not set: run opencode-sync login)"}${config.from.url ? ` (from the ${FROM[config.from.url]})` : ""}`);
  ctx.out(`API key:    ${maskKey(config.apiKey)}${config.from.apiKey ? ` (from the ${FROM[config.from.apiKey]})` : ""}`);
  ctx.out(
    `Options:    tool calls ${config.syncToolCalls ? "on" : "off"}, thinking ${config.syncThinking ? "on" : "off"}, ` +
      `secret redaction ${config.redactSecrets ? "on" : "off"}`,
  );
  if (config.url && config.apiKey) {
    try {
      const ids = await verify(config.url, config.apiKey);
      ctx.out(`Connection: ok (${ids.length} of your sessions on the server)`);
    } catch (error) {
      ok = false;
      ctx.out(`Connection: FAILED: ${error.message}`);
    }
  } else {
    ok = false;
    ctx.out("Connection: not configured");
  }
  const synced = await state.all();
  const last = await state.lastSync();
  const waiting = await spool.size();
  ctx.out(`Synced:     ${synced.size} sessions from this machine; last delivery ${when(last?.time)}${last ? ` (${last.sent} records)` : ""}`);
  ctx.out(`Spool:      ${waiting.records} records in ${waiting.files} files waiting (${spool.dir})`);
  const stores = await openStores({ env: ctx.env, onWarning: (m) => ctx.out(`OpenCode:   warning: ${m}`) });
  try {
    const jsonDir = path.join(stores.dataDir, "storage");
    const hasJson = await fsp.access(jsonDir).then(() => true, () => false);
    ctx.out(`OpenCode:   ${hasJson ? jsonDir : "no JSON storage"}; ${stores.databases.length ? stores.databases.join(", ") : "no SQLite database"}`);
  } finally {
    stores.close();
  }
  ctx.out(`Files:      config ${where.configFile}; log ${where.logFile}`);
  return ok ? 0 : 1;
}

async function sync(args, ctx) {
  const { values } = parseArgs({ args, options: { all: { type: "boolean" }, new: { type: "boolean" }, force: { type: "boolean" } } });
  const modes = ["all", "new", "force"].filter((m) => values[m]);
  if (modes.length > 1) throw new Error("choose one of --new, --all, --force");
  const mode = modes[0] ?? "new";
  const config = await loadConfig(ctx.env);
  if (!config.url || !config.apiKey) throw new Error("not configured: run `opencode-sync login` (or set OPENSYNC_URL and OPENSYNC_API_KEY)");
  const where = paths(ctx.env);
  const client = createClient({ url: config.url, apiKey: config.apiKey });
  const spool = new Spool(where.stateDir);
  const state = new SyncState(where.stateDir);
  const log = createLog(where.logFile);

  const stores = await openStores({ env: ctx.env, onWarning: (m) => ctx.err(`Warning: ${m}`) });
  let spooled = 0;
  try {
    const local = await stores.listSessions();
    const fromDb = local.filter((s) => s.store === "sqlite").length;
    ctx.out(`OpenCode storage (${stores.dataDir}): ${local.length} sessions (${local.length - fromDb} from JSON files, ${fromDb} from SQLite)`);

    const synced = await state.all();
    let onServer = new Set();
    if (mode === "all") {
      try {
        const reply = await client.listSessions();
        if (reply.status !== 200 || !Array.isArray(reply.json?.sessionIds)) throw new Error(`HTTP ${reply.status}: ${errorText(reply)}`);
        onServer = new Set(reply.json.sessionIds);
      } catch (error) {
        ctx.err(`Warning: could not list the server's sessions (${error.message}); sending every session`);
      }
    }
    const selected = local.filter(({ info }) => {
      if (mode === "force") return true;
      const mine = synced.get(info.id);
      if (mode === "new") return !mine;
      return !(onServer.has(info.id) && mine && mine.updated === info.time?.updated);
    });
    ctx.out(`${selected.length} to sync (${mode === "new" ? "never synced from here" : mode === "all" ? "new or changed" : "all, forced"})`);

    for (const [index, session] of selected.entries()) {
      let loaded;
      try {
        loaded = await session.load();
      } catch (error) {
        ctx.err(`  skipped ${session.info.id}: ${error.message}`);
        continue;
      }
      await spool.append(sessionRecords(loaded, config));
      await state.mark([{ id: session.info.id, updated: session.info.time?.updated }]);
      spooled += 1;
      const title = session.info.title ? ` ${JSON.stringify(String(session.info.title).slice(0, 60))}` : "";
      const child = session.info.parentID ? " (subagent)" : "";
      ctx.out(`  [${index + 1}/${selected.length}] ${session.info.id}${title}${child}: ${loaded.messages.length} messages`);
    }
  } finally {
    stores.close();
  }

  const waiting = await spool.size();
  if (!waiting.records) {
    ctx.out("Nothing to send.");
    return 0;
  }
  ctx.out(`Sending ${waiting.records} records to ${config.url} …`);
  const result = await spool.send(client, {
    lockWaitMs: ctx.lockWaitMs,
    onProgress: ({ sent, rejected }) => ctx.out(`  ${sent + rejected}/${waiting.records}`),
  });
  for (const r of result.rejected) {
    ctx.err(`  refused by the server: ${r.type} ${r.externalId}: ${r.error}`);
    void log(`the server refused ${r.type} ${r.externalId}: ${r.error}`);
  }
  for (const problem of result.problems) ctx.err(`  ${problem}`);
  if (result.sent) await state.setLastSync({ time: Date.now(), sent: result.sent });
  const left = result.stop ? (await spool.size()).records : 0;
  ctx.out(`Done: ${spooled} sessions spooled, ${result.sent} records sent, ${result.rejected.length} refused, ${left} left in the spool.`);
  if (result.stop) {
    ctx.err(`Stopped: ${result.stop.message}. The unsent records stay in the spool; the next sync (or the OpenCode plugin) sends them.`);
    return 1;
  }
  return result.rejected.length ? 1 : 0;
}
