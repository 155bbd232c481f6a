// The OpenSync sync API over fetch, every request with a timeout.

export class NetworkError extends Error {}

/**
 * @typedef {{status: number, json: any, text: string, retryAfterMs: number | null}} Reply
 *   retryAfterMs: the wait a 429 or 503 asked for with Retry-After, else null
 */

/**
 * @param {{url: string, apiKey?: string, timeoutMs?: number}} options
 */
export function createClient({ url, apiKey, timeoutMs = 30_000 }) {
  /**
   * @param {string} method @param {string} endpoint @param {{body?: any, auth?: boolean}} [options]
   * @returns {Promise<Reply>}
   */
  async function call(method, endpoint, { body, auth = true } = {}) {
    /** @type {Record<string, string>} */
    const headers = {};
    if (auth && apiKey) headers.Authorization = `Bearer ${apiKey}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    let text;
    try {
      response = await fetch(`${url}${endpoint}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw new NetworkError(describe(error, url, timeoutMs));
    }
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: callers look at `json === null`
    }
    const retryAfter = response.status === 429 || response.status === 503 ? response.headers.get("retry-after") : null;
    return { status: response.status, json, text, retryAfterMs: parseRetryAfter(retryAfter) };
  }

  return {
    url,
    /** GET /health (no key). */
    health: () => call("GET", "/health", { auth: false }),
    /** GET /sync/sessions/list: the externalIds of your sessions on the server. */
    listSessions: () => call("GET", "/sync/sessions/list"),
    /** POST /sync/batch {sessions, messages}. */
    postBatch: (body) => call("POST", "/sync/batch", { body }),
  };
}

function describe(error, url, timeoutMs) {
  if (error?.name === "TimeoutError" || error?.name === "AbortError") {
    return `no answer from ${url} within ${timeoutMs < 1000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`}`;
  }
  const code = error?.cause?.code ?? error?.code;
  if (code === "ECONNREFUSED") return `cannot connect to ${url} (connection refused: is the server running?)`;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `cannot resolve the host of ${url}`;
  return `cannot reach ${url}: ${error?.cause?.message ?? error?.message ?? error}`;
}

/**
 * Milliseconds to wait from a Retry-After header (seconds, or an HTTP date); null if there is none.
 * @param {string | null | undefined} value @param {number} [now]
 */
export function parseRetryAfter(value, now = Date.now()) {
  if (!value || !value.trim()) return null;
  const seconds = Number(value.trim());
  if (Number.isFinite(seconds)) return Math.max(seconds, 0) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(date - now, 0);
}

/** The server's `{"error": …}` text, or the start of the body. @param {Reply} reply */
export function errorText(reply) {
  if (typeof reply.json?.error === "string") return reply.json.error;
  return reply.text ? reply.text.slice(0, 200) : "(empty body)";
}
