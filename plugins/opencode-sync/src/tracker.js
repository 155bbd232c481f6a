// Session state rebuilt from OpenCode's bus events (the shapes of @opencode-ai/sdk's Event
// union), turned into wire records on demand. Pure: no timers, no I/O.
import { messageRecord, sessionRecord } from "./mapping.js";

/** @typedef {import("./mapping.js").MapOptions} MapOptions */

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const id = (v) => (typeof v === "string" && v !== "" ? v : undefined);

/**
 * @typedef {object} TrackedMessage
 * @property {any} info            message info, once a message.updated (or the storage) gave it
 * @property {Map<string, any>} parts
 * @property {number} rev          bumped on every change
 * @property {number} sentRev      rev of the last spooled version
 */

/**
 * @typedef {object} TrackedSession
 * @property {any} info
 * @property {Map<string, TrackedMessage>} messages
 * @property {boolean} complete    every message of the session is known: created while we
 *   watched, or filled in from OpenCode's storage. Only then are totals (tokens, cost) sent.
 * @property {boolean} needsHistory  not complete and not yet looked up in the storage
 * @property {boolean} watched     created while we watched: every message of it passes through
 *   here, so it counts as synced. A resumed session's older messages are the CLI's to backfill.
 * @property {number} rev
 * @property {number} sentRev
 */

export class Tracker {
  /** @type {Map<string, TrackedSession>} */
  sessions = new Map();

  /** @param {string} sessionID @param {boolean} [created] */
  #session(sessionID, created = false) {
    let session = this.sessions.get(sessionID);
    if (!session) {
      session = { info: undefined, messages: new Map(), complete: created, needsHistory: !created, watched: created, rev: 0, sentRev: 0 };
      this.sessions.set(sessionID, session);
    }
    return session;
  }

  #message(session, messageID) {
    let message = session.messages.get(messageID);
    if (!message) {
      message = { info: undefined, parts: new Map(), rev: 0, sentRev: 0 };
      session.messages.set(messageID, message);
    }
    return message;
  }

  /**
   * Apply one bus event. Unknown or malformed events are ignored.
   * @param {any} event  `{type, properties}`
   * @returns {{sessionID: string, changed: boolean, idle: boolean} | null}
   */
  apply(event) {
    if (!isObject(event) || typeof event.type !== "string") return null;
    const props = isObject(event.properties) ? event.properties : {};
    switch (event.type) {
      case "session.created":
      case "session.updated": {
        const info = props.info;
        const sessionID = id(info?.id);
        if (!sessionID) return null;
        const session = this.#session(sessionID, event.type === "session.created" && !this.sessions.has(sessionID));
        session.info = info;
        session.rev += 1;
        return { sessionID, changed: true, idle: false };
      }
      case "session.deleted": {
        const sessionID = id(props.info?.id) ?? id(props.sessionID);
        if (sessionID) this.sessions.delete(sessionID);
        return null;
      }
      case "message.updated": {
        const info = props.info;
        const sessionID = id(info?.sessionID) ?? id(props.sessionID);
        const messageID = id(info?.id);
        if (!sessionID || !messageID) return null;
        const session = this.#session(sessionID);
        const message = this.#message(session, messageID);
        message.info = { ...info, sessionID };
        message.rev += 1;
        session.rev += 1; // its totals changed
        return { sessionID, changed: true, idle: false };
      }
      case "message.removed": {
        const sessionID = id(props.sessionID);
        const session = sessionID && this.sessions.get(sessionID);
        if (!session || !session.messages.delete(id(props.messageID) ?? "")) return null;
        session.rev += 1;
        return { sessionID, changed: true, idle: false };
      }
      case "message.part.updated": {
        const part = props.part;
        const sessionID = id(part?.sessionID) ?? id(props.sessionID);
        const messageID = id(part?.messageID);
        const partID = id(part?.id);
        if (!sessionID || !messageID || !partID) return null;
        const message = this.#message(this.#session(sessionID), messageID);
        message.parts.set(partID, part);
        message.rev += 1;
        return { sessionID, changed: true, idle: false };
      }
      case "message.part.removed": {
        const sessionID = id(props.sessionID);
        const message = sessionID && this.sessions.get(sessionID)?.messages.get(id(props.messageID) ?? "");
        if (!message || !message.parts.delete(id(props.partID) ?? "")) return null;
        message.rev += 1;
        return { sessionID, changed: true, idle: false };
      }
      case "session.idle": {
        const sessionID = id(props.sessionID);
        return sessionID ? { sessionID, changed: false, idle: true } : null;
      }
      case "session.status": {
        // Newer OpenCode reports idleness here (session.idle is deprecated there).
        const sessionID = id(props.sessionID);
        return sessionID && props.status?.type === "idle" ? { sessionID, changed: false, idle: true } : null;
      }
      default:
        return null;
    }
  }

  /** Sessions to look up in OpenCode's storage before their totals can be sent. */
  needingHistory() {
    return [...this.sessions.entries()].filter(([, s]) => s.needsHistory).map(([sessionID]) => sessionID);
  }

  /**
   * Fill in what the events did not show (a session resumed in this OpenCode process):
   * the session info, messages and parts from OpenCode's storage. What the events showed wins.
   * @param {string} sessionID
   * @param {{info: any, messages: {info: any, parts: any[]}[]} | null} stored  null: not found
   */
  addHistory(sessionID, stored) {
    const session = this.sessions.get(sessionID);
    if (!session) return;
    session.needsHistory = false;
    if (!stored) return;
    session.info ??= stored.info;
    for (const { info, parts } of stored.messages) {
      const messageID = id(info?.id);
      if (!messageID) continue;
      const known = session.messages.get(messageID);
      if (!known) {
        const message = this.#message(session, messageID);
        message.info = { ...info, sessionID };
        for (const part of parts) if (id(part?.id)) message.parts.set(part.id, part);
        continue; // already synced or left to the CLI backfill: not re-sent, only counted in totals
      }
      if (!known.info) {
        known.info = { ...info, sessionID };
        known.rev += 1;
      }
      for (const part of parts) {
        if (id(part?.id) && !known.parts.has(part.id)) {
          known.parts.set(part.id, part);
          known.rev += 1;
        }
      }
    }
    session.complete = true;
    session.rev += 1;
  }

  /**
   * Records for everything changed since the last commit, in order: each session, then its
   * messages. Messages whose info has not arrived yet wait. Call `commit()` once the records
   * are safely spooled.
   * @param {MapOptions} options
   */
  drain(options) {
    /** @type {{type: "session" | "message", data: any}[]} */
    const records = [];
    /** @type {{id: string, updated: number | undefined}[]} */
    const touched = [];
    /** @type {Array<() => void>} */
    const marks = [];
    for (const [sessionID, session] of this.sessions) {
      const all = [...session.messages.values()].filter((m) => m.info);
      const dirty = all.filter((m) => m.rev !== m.sentRev);
      const sessionDirty = session.rev !== session.sentRev && session.info;
      if (!sessionDirty && !dirty.length) continue;
      if (sessionDirty) {
        records.push({ type: "session", data: sessionRecord(session.info, all, options, { totals: session.complete }) });
        const rev = session.rev;
        marks.push(() => (session.sentRev = rev));
      }
      for (const message of dirty.sort((a, b) => (a.info.time?.created ?? 0) - (b.info.time?.created ?? 0))) {
        const withParts = session.complete || message.parts.size > 0;
        records.push({ type: "message", data: messageRecord(message.info, [...message.parts.values()], options, { withParts }) });
        const rev = message.rev;
        marks.push(() => (message.sentRev = rev));
      }
      // Marking a resumed session would make `sync` (--new and --all) skip its older messages.
      if (session.watched) touched.push({ id: sessionID, updated: session.info?.time?.updated });
    }
    return { records, touched, commit: () => marks.forEach((mark) => mark()) };
  }
}
