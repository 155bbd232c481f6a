import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { redactDeep, redactText } from "../src/redact.js";

const SECRETS = {
  openai: "sk-proj-abcdefghijklmnopqrstuvwx1234",
  anthropic: "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
  opensync: "osk_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
  github: "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
  githubPat: "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
  aws: "AKIAIOSFODNN7EXAMPLE",
  jwt: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
};

test("known token formats are replaced wherever they appear", () => {
  for (const [name, secret] of Object.entries(SECRETS)) {
    const out = redactText(`before ${secret} after`);
    assert.equal(out, "before [REDACTED] after", name);
  }
});

test("Bearer tokens, PEM private keys and NAME=value secrets", () => {
  assert.equal(redactText("curl -H 'Authorization: Bearer abc.def-ghi_jkl'"), "curl -H 'Authorization: Bearer [REDACTED]'");
  const pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----";
  assert.equal(redactText(`key:\n${pem}\nend`), "key:\n[REDACTED]\nend");
  assert.equal(
    redactText('export DATABASE_PASSWORD="hunter2 2" GITHUB_TOKEN=abc123 STRIPE_SECRET_KEY=\'xyz\''),
    "export DATABASE_PASSWORD=\"[REDACTED]\" GITHUB_TOKEN=[REDACTED] STRIPE_SECRET_KEY='[REDACTED]'",
  );
  assert.equal(redactText("https://x.test/cb?access_token=zzz&x=1"), "https://x.test/cb?access_token=[REDACTED]&x=1");
});

test("ordinary text and harmless values stay as they are", () => {
  const plain = [
    "max_tokens=4096 and use_token=true",
    "TOKEN_FILE=$HOME_TOKEN_PATH", // a $variable, not a value
    "AUTHOR=alice PWD=/home/dev",
    "sk-short and osk_short",
    "The skeleton key is under the mat.",
  ];
  for (const text of plain) assert.equal(redactText(text), text);
});

test("redactDeep walks objects and arrays and blanks secret-named fields", () => {
  const value = {
    command: `curl -u me:${SECRETS.github} https://api.github.com`,
    env: { apiKey: "plain-looking-value", accessToken: "abc", password: "pw", maxTokens: 100, tokenizer: "cl100k" },
    list: [SECRETS.aws, 3, null, true],
  };
  assert.deepEqual(redactDeep(value), {
    command: "curl -u me:[REDACTED] https://api.github.com",
    env: { apiKey: "[REDACTED]", accessToken: "[REDACTED]", password: "[REDACTED]", maxTokens: 100, tokenizer: "cl100k" },
    list: ["[REDACTED]", 3, null, true],
  });
  assert.equal(value.env.password, "pw", "the input is not modified");
});

// The server (evals/exchanges.py) and claude-code-sync run the same corpus: the three redactors
// give the same text for every entry.
test("the shared redaction corpus", () => {
  const corpus = JSON.parse(readFileSync(new URL("../../../tests/fixtures/redaction_corpus.json", import.meta.url), "utf8"));
  assert.ok(corpus.length > 40);
  for (const { input, expected } of corpus) assert.equal(redactText(input), expected, input);
});

test("long runs of name characters take linear time", () => {
  // A base64url blob or an a-b-c-... run: the NAME=value and scheme:// patterns used to rescan it
  // from every `-` or `.` (quadratic). Ten times the text takes about ten times as long.
  const seconds = (text) => {
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const started = process.cpuUsage();
      redactText(text);
      const used = process.cpuUsage(started);
      best = Math.min(best, (used.user + used.system) / 1e6);
    }
    return best;
  };
  const tail = " postgres://app:s3cret@db/x api_key=abcd1234";
  for (const unit of ["a-", "Zx9_-Q", "a.b."]) {
    const [small, large] = [10_000, 100_000].map((size) => unit.repeat(Math.floor(size / unit.length)));
    assert.equal(redactText(small + tail), `${small} postgres://app:[REDACTED]@db/x api_key=[REDACTED]`);
    const ratio = seconds(large + tail) / seconds(small + tail);
    assert.ok(ratio <= 30, `${unit}: ${ratio}`); // linear: ~10; the quadratic scan: ~100
  }
});
