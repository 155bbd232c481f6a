import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { loadConfig, maskKey, normalizeUrl, paths, removeConfig, saveConfig } from "../src/config.js";
import { tempEnv } from "../test-support/env.js";

function write(file, value) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value));
}

test("nothing configured: no URL or key, and the documented defaults", async (t) => {
  const config = await loadConfig(tempEnv(t));
  assert.equal(config.url, undefined);
  assert.equal(config.apiKey, undefined);
  assert.deepEqual(config.from, { url: null, apiKey: null });
  assert.equal(config.syncToolCalls, true);
  assert.equal(config.syncThinking, false);
  assert.equal(config.redactSecrets, true);
});

test("env beats the config file, which beats the upstream credentials file, field by field", async (t) => {
  const env = tempEnv(t);
  const p = paths(env);
  write(p.legacyCredentialsFile, { convexUrl: "https://happy-cat-123.convex.cloud", apiKey: "osk_legacy" });
  let config = await loadConfig(env);
  assert.equal(config.url, "https://happy-cat-123.convex.site", "upstream's .convex.cloud is mapped to .convex.site");
  assert.equal(config.apiKey, "osk_legacy");
  assert.deepEqual(config.from, { url: "legacy", apiKey: "legacy" });

  write(p.configFile, { url: "http://file.example:8000/", apiKey: "osk_file" });
  config = await loadConfig(env);
  assert.equal(config.url, "http://file.example:8000", "trailing slash stripped");
  assert.deepEqual(config.from, { url: "file", apiKey: "file" });

  config = await loadConfig({ ...env, OPENSYNC_URL: "http://env.example//", OPENSYNC_API_KEY: "" });
  assert.equal(config.url, "http://env.example");
  assert.equal(config.apiKey, "osk_file", "an empty env var does not override");
  assert.deepEqual(config.from, { url: "env", apiKey: "file" });

  config = await loadConfig({ ...env, OPENSYNC_API_KEY: "osk_env" });
  assert.deepEqual([config.url, config.apiKey], ["http://file.example:8000", "osk_env"]);
});

test("options come from the file, overridden by env booleans", async (t) => {
  const env = tempEnv(t);
  write(paths(env).configFile, { syncToolCalls: false, syncThinking: true, redactSecrets: false });
  let config = await loadConfig(env);
  assert.deepEqual([config.syncToolCalls, config.syncThinking, config.redactSecrets], [false, true, false]);
  config = await loadConfig({ ...env, OPENSYNC_SYNC_TOOL_CALLS: "yes", OPENSYNC_SYNC_THINKING: "0", OPENSYNC_REDACT_SECRETS: "on" });
  assert.deepEqual([config.syncToolCalls, config.syncThinking, config.redactSecrets], [true, false, true]);
  config = await loadConfig({ ...env, OPENSYNC_SYNC_THINKING: "maybe" });
  assert.equal(config.syncThinking, true, "an unparsable env value falls back to the file");
});

test("saveConfig writes mode 0600, keeps other keys; removeConfig deletes", async (t) => {
  const env = tempEnv(t);
  const file = paths(env).configFile;
  write(file, { syncThinking: true });
  await saveConfig({ url: "http://h", apiKey: "osk_x" }, env);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(JSON.parse(fs.readFileSync(file, "utf8")), { syncThinking: true, url: "http://h", apiKey: "osk_x" });
  assert.equal(await removeConfig(env), true);
  assert.equal(fs.existsSync(file), false);
  assert.equal(await removeConfig(env), false);
});

test("XDG base directories are honoured when absolute", (t) => {
  const env = tempEnv(t);
  const p = paths({ ...env, XDG_CONFIG_HOME: "/x/conf", XDG_STATE_HOME: "/x/state", XDG_DATA_HOME: "/x/data" });
  assert.equal(p.configFile, "/x/conf/opencode-sync/config.json");
  assert.equal(p.stateDir, "/x/state/opencode-sync");
  assert.equal(p.opencodeDataDir, "/x/data/opencode");
  const relative = paths({ ...env, XDG_DATA_HOME: "relative/dir" });
  assert.equal(relative.opencodeDataDir, path.join(env.HOME, ".local/share/opencode"));
});

test("a broken config file is a clear error", async (t) => {
  const env = tempEnv(t);
  fs.mkdirSync(path.dirname(paths(env).configFile), { recursive: true });
  fs.writeFileSync(paths(env).configFile, "{not json");
  await assert.rejects(loadConfig(env), /config\.json is not valid JSON/);
});

test("normalizeUrl and maskKey", () => {
  assert.equal(normalizeUrl("  http://127.0.0.1:8000/convex.site/ "), "http://127.0.0.1:8000/convex.site");
  assert.equal(normalizeUrl(""), undefined);
  assert.equal(maskKey("osk_abcdefghijklmnopqrstuvwxyz"), "osk_abcd…wxyz");
  assert.equal(maskKey(undefined), "(none)");
});
