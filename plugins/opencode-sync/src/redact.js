// Client-side secret redaction: applied to every string a record carries before it is spooled.

const MARK = "[REDACTED]";

// The text rules are the server's (evals/exchanges.py `redact`) and claude-code-sync's
// (claude_code_sync/redact.py), in the same order: tests/fixtures/redaction_corpus.json is run
// through all three, so a change here needs the same change there.

// A name is a secret's when it ends in one of these (DB_PASSWORD, api_key, GITHUB_TOKEN,
// STRIPE_SECRET_KEY, client_secret); max_tokens, token_count, AUTHOR or PWD are not.
const SECRET_WORDS =
  "(?:password|passwd|passphrase|secret|token|credentials?|(?:api|access|private|secret|auth)[_-]?key)";
// Values that are not secrets even under a secret's name: numbers, booleans, $VARIABLES, empty.
const HARMLESS_VALUE = /^(?:\d+(?:\.\d+)?|true|false|null|none|undefined|\$\{?\w+\}?|\[REDACTED\])?$/i;

// Whole-token secrets: the match is replaced by MARK.
const TOKENS = [
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----/g,
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, // JWT
  /\bsk-[A-Za-z0-9_-]{16,}/g, // OpenAI, Anthropic (sk-ant-…), …
  /\bosk_[A-Za-z0-9_-]{16,}/g, // OpenSync keys
  /\bgithub_pat_[A-Za-z0-9_]{20,}/g,
  /\bgh[pousr]_[A-Za-z0-9]{20,}/g, // ghp_, gho_, ghu_, ghs_, ghr_
  /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, // AWS access key ids
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/g, // Slack
];
const BEARER = /\b(bearer[ \t]+)[A-Za-z0-9._~+/=-]{12,}/gi;
// scheme://user:password@host (postgres://app:s3cret@db/x, redis://:pass@host): the password goes.
// The scheme is at most 32 characters: unbounded, every `-`/`.` in a long a-b-c-... run started a
// scan of the rest of the run for "://", quadratic in its length.
const URL_PASSWORD = /\b([A-Za-z][A-Za-z0-9+.-]{0,31}:\/\/[^ \t\r\n:/@'"`]*:)[^ \t\r\n/@'"`]+@/g;
// DB_PASSWORD=..., api_key: ..., "password": "...", {'client_secret': '...'}: the value goes, its
// quotes stay. The name starts where a run of name characters starts (a long a-b-c-... run is
// scanned once); a bare value stops at a backtick, so "`TOKEN=abc`" keeps its closing one.
const ASSIGNMENT = new RegExp(
  `(?<![A-Za-z0-9_.-])(["']?)([A-Za-z0-9_.-]*?${SECRET_WORDS})\\b\\1[ \\t]*[:=][ \\t]*` +
    `("[^"\\n]*"|'[^'\\n]*'|[^ \\t\\r\\n"'\`,;&|()}<>]+)`,
  "gi",
);

/** @param {string} match @param {string} _quote @param {string} _name @param {string} value */
function assignment(match, _quote, _name, value) {
  const quote = value[0] === '"' || value[0] === "'" ? value[0] : "";
  if (HARMLESS_VALUE.test(quote ? value.slice(1, -1) : value)) return match;
  return match.slice(0, match.length - value.length) + quote + MARK + quote;
}

/** @param {string} text */
export function redactText(text) {
  let out = text;
  for (const pattern of TOKENS) out = out.replace(pattern, MARK);
  out = out.replace(BEARER, (_m, bearer) => bearer + MARK);
  out = out.replace(URL_PASSWORD, (_m, head) => `${head}${MARK}@`);
  return out.replace(ASSIGNMENT, /** @type {any} */ (assignment));
}

const SECRET_KEY = /(?:^|_)(?:secret|token|password|passwd|passphrase|credentials?)(?:_|$)|api_?key|access_?key|private_?key|auth_?key/;

/** accessToken / access-token / ACCESS_TOKEN → access_token */
function snake(key) {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/-/g, "_")
    .toLowerCase();
}

/**
 * A copy of `value` with every string redacted, and string values under secret-looking
 * object keys (`apiKey`, `password`, …) replaced entirely.
 * @template T
 * @param {T} value
 * @returns {T}
 */
export function redactDeep(value) {
  if (typeof value === "string") return /** @type {any} */ (redactText(value));
  if (Array.isArray(value)) return /** @type {any} */ (value.map(redactDeep));
  if (value && typeof value === "object") {
    const out = {};
    for (const [key, item] of Object.entries(value)) {
      out[key] =
        typeof item === "string" && item && SECRET_KEY.test(snake(key)) && !HARMLESS_VALUE.test(item)
          ? MARK
          : redactDeep(item);
    }
    return /** @type {any} */ (out);
  }
  return value;
}
