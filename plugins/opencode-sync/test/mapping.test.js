import assert from "node:assert/strict";
import { test } from "node:test";
import { messageRecord, sessionRecord, sessionRecords, sessionTotals } from "../src/mapping.js";
import { makeSession } from "../test-support/fixtures.js";

const DEFAULTS = { syncToolCalls: true, syncThinking: false, redactSecrets: true };

function hasNull(value) {
  if (value === null) return true;
  if (typeof value !== "object") return false;
  return Object.values(value).some(hasNull);
}

test("a user message: visible text only, original timestamp, no model or tokens", () => {
  const { messages } = makeSession();
  const record = messageRecord(messages[0].info, messages[0].parts, DEFAULTS);
  assert.deepEqual(record, {
    sessionExternalId: "ses_0001",
    externalId: messages[0].info.id,
    role: "user",
    source: "opencode",
    textContent: "Turn 1: please fix test_0",
    createdAt: 1_767_000_000_000,
    parts: [{ type: "text", content: "Turn 1: please fix test_0" }],
  });
});

test("an assistant message: tokens, duration, model, tool call with its output, thinking off", () => {
  const { messages } = makeSession();
  const { info, parts } = messages[1];
  const record = messageRecord(info, [...parts].reverse(), DEFAULTS);
  assert.equal(record.role, "assistant");
  assert.equal(record.model, "claude-sonnet-4-5");
  assert.equal(record.promptTokens, 100);
  assert.equal(record.completionTokens, 50, "output + reasoning");
  assert.equal(record.reasoningTokens, 10, "the part of it that was reasoning");
  assert.deepEqual([record.cacheReadTokens, record.cacheCreationTokens], [2000, 300], "this request's cache");
  assert.equal(record.durationMs, 3000);
  assert.equal(record.createdAt, info.time.created);
  assert.equal(record.textContent, "Fixed test_0.");
  assert.deepEqual(record.parts, [
    {
      type: "tool-call",
      content: {
        id: "toolu_0",
        toolName: "bash",
        args: { command: "pytest tests/test_0.py" },
        status: "completed",
        title: "Run the test",
        output: "1 passed",
      },
    },
    { type: "text", content: "Fixed test_0." },
  ], "parts in id order; step-start/step-finish dropped; reasoning off by default");
  assert.equal(hasNull(record), false);
});

test("options: thinking on, tool calls off; errored tools keep their error", () => {
  const { messages } = makeSession();
  const { info, parts } = messages[1];
  const thinking = messageRecord(info, parts, { ...DEFAULTS, syncThinking: true, syncToolCalls: false });
  assert.deepEqual(thinking.parts.map((p) => p.type), ["thinking", "text"]);
  assert.equal(thinking.parts[0].content, "Look at the test first.");
  const failed = { id: "prt_x", type: "tool", callID: "c1", tool: "edit", state: { status: "error", input: { filePath: "a" }, error: "no such file", time: { start: 1, end: 2 } } };
  const running = { id: "prt_y", type: "tool", callID: "c2", tool: "read", state: { status: "running", input: {}, time: { start: 1 } } };
  const record = messageRecord(info, [failed, running], DEFAULTS);
  assert.deepEqual(record.parts, [
    { type: "tool-call", content: { id: "c1", toolName: "edit", args: { filePath: "a" }, status: "error", error: "no such file" } },
    { type: "tool-call", content: { id: "c2", toolName: "read", args: {}, status: "running" } },
  ]);
  assert.equal(record.textContent, undefined, "no text: the key is left out, never null");
});

test("file parts keep their name, never a data: URL", () => {
  const { messages } = makeSession();
  const file = { id: "prt_f", type: "file", mime: "image/png", filename: "shot.png", url: "data:image/png;base64,AAAA", source: { type: "file", path: "/tmp/shot.png", text: { value: "", start: 0, end: 0 } } };
  const record = messageRecord(messages[0].info, [file], DEFAULTS);
  assert.deepEqual(record.parts, [{ type: "file", content: { filename: "shot.png", mime: "image/png", path: "/tmp/shot.png" } }]);
});

test("secrets in text, tool input and output are redacted unless redaction is off", () => {
  const { messages } = makeSession();
  const secret = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz";
  const parts = [
    { id: "prt_1", type: "text", text: `my key is ${secret}` },
    { id: "prt_2", type: "tool", callID: "c", tool: "bash", state: { status: "completed", input: { command: `export OPENAI_API_KEY=${secret}` }, output: secret, title: "", metadata: {}, time: { start: 1, end: 2 } } },
  ];
  const record = messageRecord(messages[1].info, parts, DEFAULTS);
  assert.equal(record.textContent, "my key is [REDACTED]");
  assert.equal(record.parts[1].content.args.command, "export OPENAI_API_KEY=[REDACTED]");
  assert.equal(record.parts[1].content.output, "[REDACTED]");
  assert.doesNotMatch(JSON.stringify(record), /abcdefghijklmnop/);
  const raw = messageRecord(messages[1].info, parts, { ...DEFAULTS, redactSecrets: false });
  assert.equal(raw.textContent, `my key is ${secret}`);
});

test("session totals: uncached input, output + reasoning, cache read/write, per model, OpenCode's summed cost", () => {
  const session = makeSession({ turns: 3 });
  assert.deepEqual(sessionTotals(session.messages), {
    promptTokens: 300,
    completionTokens: 150,
    reasoningTokens: 30,
    cacheReadTokens: 6000,
    cacheCreationTokens: 900,
    cost: 0.0369,
    modelUsage: [
      {
        model: "claude-sonnet-4-5",
        provider: "anthropic",
        inputTokens: 300,
        outputTokens: 150,
        reasoningTokens: 30,
        cacheReadTokens: 6000,
        cacheWriteTokens: 900,
      },
    ],
  });
  // a session that switched models sends one row per model, so each is priced at its own rates
  const switched = makeSession({ turns: 2 });
  switched.messages[3].info = { ...switched.messages[3].info, modelID: "gpt-5", providerID: "openai" };
  assert.deepEqual(
    sessionTotals(switched.messages).modelUsage.map((row) => [row.model, row.inputTokens]),
    [["claude-sonnet-4-5", 100], ["gpt-5", 100]],
  );
  assert.equal(sessionTotals([session.messages[0]]), null, "no assistant message: no totals");
});

test("a session record: title, project, model, times; totals only when asked", () => {
  const session = makeSession({ turns: 2, parentID: "ses_parent" });
  const record = sessionRecord(session.info, session.messages, DEFAULTS);
  assert.deepEqual(record, {
    externalId: "ses_0001",
    source: "opencode",
    title: "Fix the flaky test",
    projectPath: "/home/dev/projects/demo-app",
    projectName: "demo-app",
    model: "claude-sonnet-4-5",
    provider: "anthropic",
    promptTokens: 200,
    completionTokens: 100,
    reasoningTokens: 20,
    cacheReadTokens: 4000,
    cacheCreationTokens: 600,
    cost: 0.0246,
    modelUsage: [
      {
        model: "claude-sonnet-4-5",
        provider: "anthropic",
        inputTokens: 200,
        outputTokens: 100,
        reasoningTokens: 20,
        cacheReadTokens: 4000,
        cacheWriteTokens: 600,
      },
    ],
    durationMs: 20_000,
    createdAt: 1_767_000_000_000,
  });
  const partial = sessionRecord(session.info, session.messages.slice(2), DEFAULTS, { totals: false });
  assert.equal("cost" in partial || "promptTokens" in partial, false);
  const noDirectory = sessionRecord({ ...session.info, directory: undefined }, session.messages, DEFAULTS, { projectPath: "/srv/repo" });
  assert.deepEqual([noDirectory.projectPath, noDirectory.projectName], ["/srv/repo", "repo"]);
});

test("sessionRecords: the session first, then its messages oldest first", () => {
  const session = makeSession({ turns: 2 });
  session.messages.reverse();
  const records = sessionRecords(session, DEFAULTS);
  assert.deepEqual(records.map((r) => r.type), ["session", "message", "message", "message", "message"]);
  const created = records.slice(1).map((r) => r.data.createdAt);
  assert.deepEqual(created, [...created].sort((a, b) => a - b));
  assert.equal(records.every((r) => !hasNull(r.data)), true);
});
