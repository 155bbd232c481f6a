// Where things live, and the connection settings: config file < env, with the upstream
// opencode-sync-plugin's ~/.opensync/credentials.json as a fallback.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/** @typedef {Record<string, string | undefined>} Env */

/**
 * @typedef {object} Config
 * @property {string | undefined} url          server base URL, no trailing slash
 * @property {string | undefined} apiKey       `osk_…`
 * @property {boolean} syncToolCalls           send tool calls (default on)
 * @property {boolean} syncThinking            send reasoning (default off)
 * @property {boolean} redactSecrets           redact secrets client-side (default on)
 * @property {{url: string | null, apiKey: string | null}} from  where url/apiKey came from
 */

const OPTIONS = {
  syncToolCalls: { env: "OPENSYNC_SYNC_TOOL_CALLS", default: true },
  syncThinking: { env: "OPENSYNC_SYNC_THINKING", default: false },
  redactSecrets: { env: "OPENSYNC_REDACT_SECRETS", default: true },
};

/** @param {Env} env */
function home(env) {
  return env.HOME || os.homedir();
}

/** An XDG base directory: the variable when it is an absolute path, else the default under HOME. */
function xdg(env, name, fallback) {
  const value = env[name];
  return value && path.isAbsolute(value) ? value : path.join(home(env), fallback);
}

/** @param {Env} [env] */
export function paths(env = process.env) {
  const configDir = path.join(xdg(env, "XDG_CONFIG_HOME", ".config"), "opencode-sync");
  const stateDir = path.join(xdg(env, "XDG_STATE_HOME", path.join(".local", "state")), "opencode-sync");
  return {
    configFile: path.join(configDir, "config.json"),
    legacyCredentialsFile: path.join(home(env), ".opensync", "credentials.json"),
    stateDir,
    logFile: path.join(stateDir, "opencode-sync.log"),
    // OpenCode's own data folder (Global.Path.data = xdgData/opencode, on every platform).
    opencodeDataDir: path.join(xdg(env, "XDG_DATA_HOME", path.join(".local", "share")), "opencode"),
  };
}

/** Trim, map upstream's Convex cloud host to its HTTP host, and drop trailing slashes. */
export function normalizeUrl(value) {
  if (typeof value !== "string") return undefined;
  const url = value.trim().replace(".convex.cloud", ".convex.site").replace(/\/+$/, "");
  return url || undefined;
}

/** "true"/"1"/"yes"/"on" and "false"/"0"/"no"/"off"; anything else is undefined. */
function parseBool(value) {
  if (typeof value === "boolean") return value;
  if (typeof value !== "string") return undefined;
  const v = value.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off"].includes(v)) return false;
  return undefined;
}

async function readJson(file) {
  let text;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (error) {
    if (error.code === "ENOENT") return {};
    throw error;
  }
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value) ? value : {};
  } catch {
    throw new Error(`${file} is not valid JSON`);
  }
}

function nonEmpty(value) {
  return typeof value === "string" && value.trim() ? value.trim() : undefined;
}

/**
 * Load the settings. Precedence, per field: env, then our config file, then the upstream
 * plugin's credentials file.
 * @param {Env} [env]
 * @returns {Promise<Config>}
 */
export async function loadConfig(env = process.env) {
  const p = paths(env);
  const file = await readJson(p.configFile);
  const legacy = await readJson(p.legacyCredentialsFile);
  const pick = (envValue, fileValue, legacyValue) => {
    if (nonEmpty(envValue)) return [nonEmpty(envValue), "env"];
    if (nonEmpty(fileValue)) return [nonEmpty(fileValue), "file"];
    if (nonEmpty(legacyValue)) return [nonEmpty(legacyValue), "legacy"];
    return [undefined, null];
  };
  const [url, urlFrom] = pick(env.OPENSYNC_URL, file.url, legacy.convexUrl);
  const [apiKey, keyFrom] = pick(env.OPENSYNC_API_KEY, file.apiKey, legacy.apiKey);
  const option = (name) => parseBool(env[OPTIONS[name].env]) ?? parseBool(file[name]) ?? OPTIONS[name].default;
  return {
    url: normalizeUrl(url),
    apiKey,
    syncToolCalls: option("syncToolCalls"),
    syncThinking: option("syncThinking"),
    redactSecrets: option("redactSecrets"),
    from: { url: urlFrom, apiKey: keyFrom },
  };
}

/**
 * Write our config file (mode 0600), keeping keys it already has.
 * @param {Record<string, unknown>} values
 * @param {Env} [env]
 */
export async function saveConfig(values, env = process.env) {
  const file = paths(env).configFile;
  const current = await readJson(file);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify({ ...current, ...values }, null, 2)}\n`, { mode: 0o600 });
  await fs.chmod(tmp, 0o600);
  await fs.rename(tmp, file);
  return file;
}

/** Delete our config file; true when there was one. @param {Env} [env] */
export async function removeConfig(env = process.env) {
  try {
    await fs.unlink(paths(env).configFile);
    return true;
  } catch (error) {
    if (error.code === "ENOENT") return false;
    throw error;
  }
}

/** `osk_abcd…wxyz` for display. */
export function maskKey(key) {
  if (!key) return "(none)";
  return key.length <= 12 ? `${key.slice(0, 4)}…` : `${key.slice(0, 8)}…${key.slice(-4)}`;
}
