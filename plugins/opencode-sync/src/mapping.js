// OpenCode sessions, messages and parts (the shapes of packages/opencode/src/session/message-v2.ts
// and the session info) → OpenSync wire records. Shared by the live plugin and the backfill CLI.
import path from "node:path";
import { redactDeep } from "./redact.js";

const SOURCE = "opencode";

/**
 * @typedef {object} MapOptions
 * @property {boolean} syncToolCalls
 * @property {boolean} syncThinking
 * @property {boolean} redactSecrets
 */

/** @typedef {{info: any, parts: any[]}} StoredMessage */

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const str = (v) => (typeof v === "string" && v !== "" ? v : undefined);

/**
 * Copy only the keys whose value is defined and not null: the wire never carries null.
 * @param {Record<string, unknown>} object
 * @returns {Record<string, unknown>}
 */
function defined(object) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const [key, value] of Object.entries(object)) {
    if (value !== undefined && value !== null) out[key] = value;
  }
  return out;
}

/** OpenCode ids are time-ordered (`prt_…`, `msg_…`), so sorting by id restores creation order. */
function byId(a, b) {
  const x = String(a?.id ?? "");
  const y = String(b?.id ?? "");
  return x < y ? -1 : x > y ? 1 : 0;
}

function messageTime(message) {
  return num(message?.info?.time?.created) ?? 0;
}

function byCreated(a, b) {
  return messageTime(a) - messageTime(b) || byId(a.info, b.info);
}

/** Text the user or the model actually wrote (OpenCode's synthetic/ignored parts are its own plumbing). */
function isVisibleText(part) {
  return part.type === "text" && typeof part.text === "string" && !part.synthetic && !part.ignored;
}

/** One OpenCode part → one wire part, or null when it is not sent. @param {MapOptions} options */
function wirePart(part, options) {
  switch (part.type) {
    case "text":
      return isVisibleText(part) ? { type: "text", content: part.text } : null;
    case "reasoning":
      return options.syncThinking && str(part.text) ? { type: "thinking", content: part.text } : null;
    case "tool": {
      if (!options.syncToolCalls) return null;
      const state = isObject(part.state) ? part.state : {};
      return {
        type: "tool-call",
        content: defined({
          id: str(part.callID),
          toolName: str(part.tool) ?? "tool",
          args: isObject(state.input) ? state.input : undefined,
          status: str(state.status),
          title: str(state.title),
          output: typeof state.output === "string" ? state.output : undefined,
          error: str(state.error),
        }),
      };
    }
    case "file": {
      // Attachments are often data: URLs of whole images; keep only what names the file.
      const url = str(part.url);
      const content = defined({
        filename: str(part.filename),
        mime: str(part.mime),
        path: str(part.source?.path),
        url: url && !url.startsWith("data:") ? url : undefined,
      });
      return Object.keys(content).length ? { type: "file", content } : null;
    }
    default:
      // step-start/step-finish (tokens are on the message), snapshot, patch, agent, subtask,
      // retry, compaction: OpenCode bookkeeping.
      return null;
  }
}

/**
 * @param {any} info   OpenCode message info (UserMessage | AssistantMessage)
 * @param {any[]} parts
 * @param {MapOptions} options
 * @param {{withParts?: boolean}} [how]  withParts false: leave the server's parts as they are
 */
export function messageRecord(info, parts, options, { withParts = true } = {}) {
  const sorted = [...parts].filter(isObject).sort(byId);
  const text = sorted
    .filter(isVisibleText)
    .map((p) => p.text)
    .join("\n")
    .trim();
  const assistant = info.role === "assistant";
  const tokens = isObject(info.tokens) ? info.tokens : {};
  const created = num(info.time?.created);
  const completed = num(info.time?.completed);
  const wire = withParts ? sorted.map((p) => wirePart(p, options)).filter(Boolean) : undefined;
  const content = options.redactSecrets ? redactDeep({ text, wire }) : { text, wire };
  return defined({
    sessionExternalId: str(info.sessionID),
    externalId: str(info.id),
    role: info.role === "user" || assistant ? info.role : "unknown",
    source: SOURCE,
    textContent: str(content.text),
    model: assistant ? str(info.modelID) : undefined,
    promptTokens: assistant ? num(tokens.input) : undefined,
    completionTokens: assistant ? sumDefined(tokens.output, tokens.reasoning) : undefined,
    reasoningTokens: assistant ? num(tokens.reasoning) || undefined : undefined,
    cacheReadTokens: assistant ? num(tokens.cache?.read) || undefined : undefined,
    cacheCreationTokens: assistant ? num(tokens.cache?.write) || undefined : undefined,
    durationMs: assistant && created !== undefined && completed !== undefined ? Math.max(0, completed - created) : undefined,
    createdAt: created,
    parts: content.wire,
  });
}

function sumDefined(...values) {
  const numbers = values.map(num).filter((v) => v !== undefined);
  return numbers.length ? numbers.reduce((a, b) => a + b, 0) : undefined;
}

/**
 * Totals over a session's assistant messages, as OpenCode counts them: input (uncached),
 * output + reasoning (reasoning also apart, as the part of it that was), cache read/write, the
 * same per model (`modelUsage`: a session can switch models, each priced at its own rates by the
 * server), and the sum of OpenCode's own per-message cost.
 * @param {{info: any}[]} messages
 */
export function sessionTotals(messages) {
  const totals = {
    promptTokens: 0,
    completionTokens: 0,
    reasoningTokens: 0,
    cacheReadTokens: 0,
    cacheCreationTokens: 0,
    cost: 0,
  };
  /** @type {Map<string, any>} */
  const perModel = new Map();
  let assistants = 0;
  for (const { info } of messages) {
    if (info?.role !== "assistant") continue;
    assistants += 1;
    const t = isObject(info.tokens) ? info.tokens : {};
    const cache = isObject(t.cache) ? t.cache : {};
    const input = num(t.input) ?? 0;
    const output = (num(t.output) ?? 0) + (num(t.reasoning) ?? 0);
    const reasoning = num(t.reasoning) ?? 0;
    const read = num(cache.read) ?? 0;
    const write = num(cache.write) ?? 0;
    totals.promptTokens += input;
    totals.completionTokens += output;
    totals.reasoningTokens += reasoning;
    totals.cacheReadTokens += read;
    totals.cacheCreationTokens += write;
    totals.cost += num(info.cost) ?? 0;
    const model = str(info.modelID);
    const provider = str(info.providerID);
    const key = `${provider ?? ""}\u0000${model ?? ""}`;
    const row = perModel.get(key) ?? {
      model,
      provider,
      inputTokens: 0,
      outputTokens: 0,
      reasoningTokens: 0,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
    };
    row.inputTokens += input;
    row.outputTokens += output;
    row.reasoningTokens += reasoning;
    row.cacheReadTokens += read;
    row.cacheWriteTokens += write;
    perModel.set(key, row);
  }
  // Float sums of many small costs drift (0.1 + 0.2); the server keeps 8 decimals.
  totals.cost = Math.round(totals.cost * 1e10) / 1e10;
  if (!assistants) return null;
  const rows = [...perModel.values()]
    .filter((row) => row.inputTokens || row.outputTokens || row.cacheReadTokens || row.cacheWriteTokens)
    .map((row) => defined(row));
  return defined({
    ...totals,
    reasoningTokens: totals.reasoningTokens || undefined,
    modelUsage: rows.length ? rows : undefined,
  });
}

/**
 * @param {any} info        OpenCode session info
 * @param {{info: any}[]} messages  every message of the session known so far
 * @param {MapOptions} options
 * @param {{totals?: boolean, projectPath?: string}} [how]  totals false: the messages are
 *   not the whole session, so leave the server's tokens and cost alone
 */
export function sessionRecord(info, messages, options, { totals = true, projectPath } = {}) {
  const ordered = [...messages].sort(byCreated);
  const lastOf = (role) => ordered.filter((m) => m.info?.role === role).at(-1)?.info;
  const assistant = lastOf("assistant");
  const user = lastOf("user");
  const directory = str(info.directory) ?? str(projectPath) ?? str(assistant?.path?.cwd);
  const created = num(info.time?.created);
  const updated = num(info.time?.updated);
  const title = str(info.title);
  return defined({
    externalId: str(info.id),
    source: SOURCE,
    title: title && options.redactSecrets ? redactDeep(title) : title,
    projectPath: directory,
    projectName: directory ? path.basename(directory) || undefined : undefined,
    model: str(assistant?.modelID) ?? str(user?.model?.modelID),
    provider: str(assistant?.providerID) ?? str(user?.model?.providerID),
    ...(totals ? sessionTotals(ordered) : null),
    durationMs: created !== undefined && updated !== undefined ? Math.max(0, updated - created) : undefined,
    createdAt: created,
  });
}

/**
 * A whole stored session → spool records (the session first, then its messages in order).
 * @param {{info: any, messages: StoredMessage[], projectPath?: string}} session
 * @param {MapOptions} options
 * @returns {import("./spool.js").SpoolRecord[]}
 */
export function sessionRecords(session, options) {
  const messages = session.messages.filter((m) => str(m.info?.id)).sort(byCreated);
  /** @type {import("./spool.js").SpoolRecord[]} */
  const records = [{ type: "session", data: sessionRecord(session.info, messages, options, { projectPath: session.projectPath }) }];
  for (const m of messages) {
    records.push({ type: "message", data: messageRecord({ ...m.info, sessionID: session.info.id }, m.parts, options) });
  }
  return records;
}
