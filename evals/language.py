"""The main programming language of a session, from the info strings of its fenced code blocks
(```python, ~~~ts). Data and prose formats (JSON, YAML, diff, text, ...) count only when no
programming language appears at all."""

import re
from collections import Counter
from collections.abc import Iterable

_FENCE = re.compile(r"^[ \t]{0,3}(?:`{3,}|~{3,})[ \t]*([A-Za-z0-9_+#.-]+)", re.MULTILINE)
ALIASES = {
    "py": "python", "python3": "python", "py3": "python", "ipython": "python", "pycon": "python",
    "js": "javascript", "jsx": "javascript", "mjs": "javascript", "node": "javascript",
    "ts": "typescript", "tsx": "typescript",
    "sh": "bash", "shell": "bash", "zsh": "bash", "console": "bash", "shell-session": "bash",
    "rb": "ruby", "rs": "rust", "golang": "go", "c++": "cpp", "cc": "cpp", "hpp": "cpp", "h": "c",
    "cs": "csharp", "c#": "csharp", "kt": "kotlin", "kts": "kotlin", "ps1": "powershell",
    "yml": "yaml", "md": "markdown", "txt": "text", "plaintext": "text", "psql": "sql", "postgresql": "sql",
    "html": "html", "htm": "html", "docker": "dockerfile", "tf": "terraform", "hcl": "terraform",
}  # fmt: skip
DATA_FORMATS = {
    "json", "jsonc", "yaml", "toml", "xml", "csv", "text", "markdown", "diff", "patch", "log", "ini",
    "env", "output", "plain", "none",
}  # fmt: skip


def normalise(info: str) -> str:
    name = info.strip().lower().split(":")[0]
    if "." in name:  # a file name (```app.ts): its extension
        name = name.rsplit(".", 1)[1]
    return ALIASES.get(name, name)


def detect_language(texts: Iterable[str | None]) -> str | None:
    counts: Counter[str] = Counter()
    for text in texts:
        if text and ("```" in text or "~~~" in text):
            counts.update(normalise(info) for info in _FENCE.findall(text))
    counts.pop("", None)
    if not counts:
        return None
    code = {lang: n for lang, n in counts.items() if lang not in DATA_FORMATS}
    ranked = code or counts
    # most blocks first; ties by name, so the answer never depends on message order
    return min(ranked.items(), key=lambda item: (-item[1], item[0]))[0][:32]
