"""A local stand-in for the OpenAI embeddings endpoint, spoken to by the real `openai` client.

POST /v1/embeddings on 127.0.0.1 answers like the real API (`data[].embedding`, `index`,
`model`, `usage`), honours `dimensions`, batched `input` lists and `encoding_format` (float or
base64), checks the bearer key, records every request, and can be told to fail the next
requests with given HTTP statuses (429, 500...).

Vectors are a hashed bag of words, normalised: texts that share words point the same way, so
similarity behaves like a (very simple) real model, deterministically.
"""

import base64
import hashlib
import json
import math
import re
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORD = re.compile(r"[a-z0-9_]+")


def fake_vector(text: str, dimensions: int) -> list[float]:
    vector = [0.0] * dimensions
    for word in WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "little") % dimensions] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if not norm:
        vector[0] = 1.0
        return vector
    return [x / norm for x in vector]


def _inputs(body: dict) -> list:
    """`input` is a string or a list of strings."""
    return body.get("input") if isinstance(body.get("input"), list) else [body.get("input")]


class FakeEmbeddingsServer:
    def __init__(self, *, api_key: str = "test-key", native_dimensions: int = 1536) -> None:
        self.api_key = api_key
        self.native_dimensions = native_dimensions
        self.requests: list[dict] = []  # the JSON bodies of the requests answered with vectors
        self.failed: list[int] = []  # the statuses sent instead, in order
        self.fail_next: list[int] = []  # statuses for the next requests, first to last
        self.fail_after: int | None = None  # answer 500 once this many requests got vectors
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def texts(self) -> list[str]:
        """Every input text embedded so far, in order."""
        return [text for body in self.requests for text in _inputs(body)]

    def start(self) -> "FakeEmbeddingsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _answer(self, headers, body: dict) -> tuple[int, dict]:
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
        inputs = _inputs(body)
        if not inputs or any(not isinstance(text, str) or not text for text in inputs):
            return 400, {"error": {"message": "'$.input' is invalid", "type": "invalid_request_error"}}
        with self._lock:
            if self.fail_next:
                status = self.fail_next.pop(0)
            elif self.fail_after is not None and len(self.requests) >= self.fail_after:
                status = 500
            else:
                status = 200
                self.requests.append(body)
            if status != 200:
                self.failed.append(status)
                return status, {"error": {"message": f"fake failure {status}", "type": "server_error"}}
        dimensions = body.get("dimensions") or self.native_dimensions
        data = []
        for index, text in enumerate(inputs):
            vector = fake_vector(text, dimensions)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(len(WORD.findall(text.lower())) or 1 for text in inputs)
        return 200, {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/embeddings":
                    status, answer = 404, {"error": {"message": "not found"}}
                else:
                    status, answer = server._answer(self.headers, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep test output quiet
                pass

        return Handler
