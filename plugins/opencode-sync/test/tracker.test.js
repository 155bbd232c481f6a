import assert from "node:assert/strict";
import { test } from "node:test";
import { Tracker } from "../src/tracker.js";
import { eventsFor, makeSession } from "../test-support/fixtures.js";

const OPTIONS = { syncToolCalls: true, syncThinking: false, redactSecrets: true };

function feed(tracker, events) {
  return events.map((event) => tracker.apply(event));
}

test("a session seen from its creation: one session record with totals, every message once, final texts", () => {
  const session = makeSession({ turns: 2 });
  const tracker = new Tracker();
  const results = feed(tracker, eventsFor(session));
  assert.deepEqual(results.at(-1), { sessionID: "ses_0001", changed: false, idle: true });
  const { records, touched, commit } = tracker.drain(OPTIONS);
  assert.deepEqual(records.map((r) => r.type), ["session", "message", "message", "message", "message"]);
  const [sessionRecord, ...messages] = records.map((r) => r.data);
  assert.equal(sessionRecord.title, "Fix the flaky test");
  assert.equal(sessionRecord.cost, 0.0246);
  assert.equal(sessionRecord.cacheReadTokens, 4000);
  assert.equal(sessionRecord.createdAt, session.info.time.created);
  assert.deepEqual(messages.map((m) => m.externalId), session.messages.map((m) => m.info.id));
  assert.deepEqual(messages.map((m) => m.createdAt), session.messages.map((m) => m.info.time.created));
  assert.equal(messages[1].textContent, "Fixed test_0.", "the last part update wins");
  assert.equal(messages[1].completionTokens, 50, "the final message.updated wins");
  assert.deepEqual(touched, [{ id: "ses_0001", updated: session.info.time.updated }]);
  commit();
  assert.equal(tracker.drain(OPTIONS).records.length, 0, "nothing left after commit");
});

test("upstream's bug: session events carry the session under properties.info, not properties.id", () => {
  const tracker = new Tracker();
  assert.equal(tracker.apply({ type: "session.created", properties: { id: "ses_x" } }), null);
  assert.equal(tracker.apply({ type: "session.idle", properties: { id: "ses_x" } }), null);
  assert.equal(tracker.drain(OPTIONS).records.length, 0);
  const { info } = makeSession();
  assert.deepEqual(tracker.apply({ type: "session.created", properties: { info } }), { sessionID: info.id, changed: true, idle: false });
  assert.equal(tracker.drain(OPTIONS).records[0].data.externalId, info.id);
});

test("a change after drain() and before commit() is not lost", () => {
  const session = makeSession();
  const tracker = new Tracker();
  feed(tracker, eventsFor(session));
  const first = tracker.drain(OPTIONS);
  const text = { ...session.messages[1].parts[3], text: "Fixed test_0, and more." };
  tracker.apply({ type: "message.part.updated", properties: { part: text } });
  first.commit();
  const second = tracker.drain(OPTIONS);
  assert.deepEqual(second.records.map((r) => r.data.textContent), ["Fixed test_0, and more."]);
});

test("parts arriving before their message info wait for it", () => {
  const session = makeSession();
  const tracker = new Tracker();
  tracker.apply({ type: "session.created", properties: { info: session.info } });
  tracker.apply({ type: "message.part.updated", properties: { part: session.messages[0].parts[0] } });
  let drained = tracker.drain(OPTIONS);
  assert.deepEqual(drained.records.map((r) => r.type), ["session"]);
  drained.commit();
  tracker.apply({ type: "message.updated", properties: { info: session.messages[0].info } });
  drained = tracker.drain(OPTIONS);
  assert.deepEqual(drained.records.map((r) => [r.type, r.data.textContent]), [
    ["session", undefined],
    ["message", "Turn 1: please fix test_0"],
  ]);
});

test("removed parts and messages", () => {
  const session = makeSession({ turns: 2 });
  const tracker = new Tracker();
  feed(tracker, eventsFor(session));
  tracker.drain(OPTIONS).commit();
  const [, answer, , lastAnswer] = session.messages;
  tracker.apply({ type: "message.part.removed", properties: { sessionID: "ses_0001", messageID: answer.info.id, partID: answer.parts[2].id } });
  tracker.apply({ type: "message.removed", properties: { sessionID: "ses_0001", messageID: lastAnswer.info.id } });
  const records = tracker.drain(OPTIONS).records;
  assert.deepEqual(records.map((r) => r.type), ["session", "message"]);
  assert.equal(records[0].data.cost, 0.0123, "the removed message no longer counts");
  assert.deepEqual(records[1].data.parts.map((p) => p.type), ["text"], "the tool part is gone");
});

test("session.status idle counts as idle; busy does not", () => {
  const tracker = new Tracker();
  assert.deepEqual(tracker.apply({ type: "session.status", properties: { sessionID: "s", status: { type: "idle" } } }), { sessionID: "s", changed: false, idle: true });
  assert.equal(tracker.apply({ type: "session.status", properties: { sessionID: "s", status: { type: "busy" } } }), null);
});

test("a session resumed in this process: totals wait for its history; old messages are not re-sent", () => {
  const session = makeSession({ turns: 3 });
  const tracker = new Tracker();
  const newTurn = { info: session.info, messages: session.messages.slice(4) };
  feed(tracker, eventsFor(newTurn, { created: false }));
  assert.deepEqual(tracker.needingHistory(), ["ses_0001"]);
  const before = tracker.drain(OPTIONS).records;
  assert.equal(before[0].type, "session");
  assert.equal("cost" in before[0].data, false, "no partial totals that would overwrite the server's");
  tracker.addHistory("ses_0001", session);
  assert.deepEqual(tracker.needingHistory(), []);
  const after = tracker.drain(OPTIONS).records;
  assert.equal(after[0].data.cost, 0.0369, "totals over the whole session");
  assert.deepEqual(after.filter((r) => r.type === "message").map((r) => r.data.externalId), session.messages.slice(4).map((m) => m.info.id));
});

test("a session never found in the storage keeps its totals out", () => {
  const session = makeSession();
  const tracker = new Tracker();
  feed(tracker, eventsFor(session, { created: false }));
  tracker.addHistory("ses_0001", null);
  assert.deepEqual(tracker.needingHistory(), []);
  assert.equal("cost" in tracker.drain(OPTIONS).records[0].data, false);
});

test("subagent sessions are their own sessions", () => {
  const parent = makeSession({ id: "ses_parent", n: 1 });
  const child = makeSession({ id: "ses_child", n: 2, parentID: "ses_parent", title: "Explore (@general subagent)" });
  const tracker = new Tracker();
  feed(tracker, [...eventsFor(parent), ...eventsFor(child)]);
  const sessions = tracker.drain(OPTIONS).records.filter((r) => r.type === "session").map((r) => r.data.externalId);
  assert.deepEqual(sessions, ["ses_parent", "ses_child"]);
});

test("malformed events are ignored, never thrown", () => {
  const tracker = new Tracker();
  const junk = [
    null, undefined, 42, "session.idle", [], {}, { type: 7 },
    { type: "message.updated" }, { type: "message.updated", properties: null },
    { type: "message.updated", properties: { info: { role: "user" } } },
    { type: "message.part.updated", properties: { part: { id: "p", type: "text" } } },
    { type: "message.removed", properties: { sessionID: "nope", messageID: "x" } },
    { type: "message.part.removed", properties: {} },
    { type: "session.updated", properties: { info: "x" } },
    { type: "session.deleted", properties: {} },
    { type: "tui.toast.show", properties: { message: "hi" } },
  ];
  for (const event of junk) assert.equal(tracker.apply(event), null, JSON.stringify(event));
  assert.equal(tracker.drain(OPTIONS).records.length, 0);
});
