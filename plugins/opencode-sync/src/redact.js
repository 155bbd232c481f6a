// Client-side secret redaction: applied to every string a record carries before it is spooled.

const MARK = "[REDACTED]";

// Names of environment variables / settings whose value is a secret.
const SECRET_NAME =
  "[A-Za-z0-9_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?|AUTH_?KEY)[A-Za-z0-9_]*";
// Values that are not secrets even under a secret-looking name: numbers, booleans, $VARIABLES.
const HARMLESS_VALUE = /^(?:\d+(?:\.\d+)?|true|false|null|none|undefined|\$\{?\w+\}?|\[REDACTED\])$/i;

/** @type {Array<[RegExp, string | ((...m: string[]) => string)]>} */
const RULES = [
  [/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----/g, `${MARK} private key`],
  [/\bBearer\s+[A-Za-z0-9._~+/=-]{8,}/gi, `Bearer ${MARK}`],
  // JWT: three base64url segments, the first one a JSON header ("eyJ" = '{"').
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, MARK],
  [/\bsk-[A-Za-z0-9_-]{16,}/g, MARK], // OpenAI, Anthropic (sk-ant-…), …
  [/\bosk_[A-Za-z0-9_-]{16,}/g, MARK], // OpenSync keys
  [/\bgithub_pat_[A-Za-z0-9_]{20,}/g, MARK],
  [/\bgh[pousr]_[A-Za-z0-9]{20,}/g, MARK], // ghp_, gho_, ghu_, ghs_, ghr_
  [/\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, MARK], // AWS access key ids
  [
    new RegExp(`\\b(${SECRET_NAME})(\\s*=\\s*)("[^"\\n]*"|'[^'\\n]*'|[^\\s"'\`,;&|)]+)`, "gi"),
    (match, name, eq, value) => {
      const bare = value.replace(/^["']|["']$/g, "");
      return HARMLESS_VALUE.test(bare) || bare === "" ? match : `${name}${eq}${MARK}`;
    },
  ],
];

const SECRET_KEY = /(?:^|_)(?:secret|token|password|passwd|passphrase|credentials?)(?:_|$)|api_?key|access_?key|private_?key|auth_?key/;

/** @param {string} text */
export function redactText(text) {
  let out = text;
  for (const [pattern, replacement] of RULES) {
    out = out.replace(pattern, /** @type {any} */ (replacement));
  }
  return out;
}

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
