"""Turn stored messages into safe HTML for the viewer and the public page.

Message content is untrusted: it comes from whatever the agent read or wrote. Markdown is
rendered with raw HTML disabled, code is highlighted by Pygments on the server, and the result
is passed through nh3 (an allow-list sanitizer) before it is marked safe, so a `<script>` or an
`onerror=` in a message is shown as text, never run.
"""

import contextlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from opensync import inputs

# Longer texts are cut for display (a tool result can be a whole file); exports keep everything.
DISPLAY_LIMIT = 20_000
HIGHLIGHT_LIMIT = 50_000

ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul", "div",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "div": {"class"},
    "pre": {"class"},
    "span": {"class"},
    "td": {"class"},
    "th": {"class"},
}

_formatter = HtmlFormatter(nowrap=True, classprefix="tok-")
_thinking_tag = re.compile(r"<thinking>(.*?)</thinking>\s*", re.DOTALL)
# markdown-it aligns table columns with style="text-align:…", which the Content-Security-Policy
# blocks (no inline styles): a class does the same (app.css). Raw HTML is off, so these cells
# can only come from markdown-it.
_aligned_cell = re.compile(r'<(t[hd]) style="text-align:(left|center|right)">')


def strip_thinking(text: str) -> str:
    """`text` without the `<thinking>…</thinking>` blocks some agents put inside their answers."""
    return _thinking_tag.sub("", text)


def _highlight_code(code: str, lang: str, _attrs) -> str:
    """markdown-it's highlight hook: a whole highlighted block for a known language, or "" to let
    markdown-it write the escaped `<pre><code>` itself."""
    spans = _highlight(code, lang)
    if spans is None:
        return ""
    return f'<pre class="highlight"><code class="language-{escape(lang.split()[0])}">{spans}</code></pre>'


def _highlight(code: str, lang: str) -> str | None:
    name = (lang or "").strip().split()[0].lower() if lang else ""
    if not name or len(code) > HIGHLIGHT_LIMIT:
        return None
    try:
        lexer = get_lexer_by_name(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    return highlight(code, lexer, _formatter)


def _markdown() -> MarkdownIt:
    md = MarkdownIt("js-default", {"highlight": _highlight_code, "html": False, "breaks": True})
    md.enable("table").enable("strikethrough")
    return md


_md = _markdown()


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow ugc",
    )


def render_markdown(text: str) -> SafeString:
    """Markdown → sanitized HTML, of at most DISPLAY_LIMIT characters of the text."""
    if len(text) > DISPLAY_LIMIT:
        text = text[:DISPLAY_LIMIT] + f"\n\n… ({len(text) - DISPLAY_LIMIT:,} more characters: see the full text)"
    return _render_markdown(text)


@lru_cache(maxsize=2048)
def _render_markdown(text: str) -> SafeString:
    # Cached on the truncated text, so the cache holds at most 2048 × DISPLAY_LIMIT characters.
    html = _aligned_cell.sub(r'<\1 class="align-\2">', _md.render(text))
    return mark_safe(sanitize(html))  # noqa: S308 - sanitized by nh3 just above


def render_code(text: str, lang: str = "") -> SafeString:
    """A block of code or tool output: highlighted when the language is known, escaped otherwise."""
    if len(text) > DISPLAY_LIMIT:
        text = text[:DISPLAY_LIMIT] + f"\n… ({len(text) - DISPLAY_LIMIT:,} more characters: see the full text)"
    body = _highlight(text, lang) or str(escape(text))
    return mark_safe(sanitize(f'<pre class="highlight"><code>{body}</code></pre>'))  # noqa: S308


# --- parts → display blocks ---------------------------------------------------------------------

TEXT_TYPES = {"text"}
THINKING_TYPES = {"thinking", "reasoning"}
TOOL_CALL_TYPES = {"tool-call", "tool_call", "tool_use", "tool-use", "tool"}
TOOL_RESULT_TYPES = {"tool-result", "tool_result"}


@dataclass
class Block:
    kind: str  # text | thinking | tool_call | tool_result | other
    html: SafeString
    label: str = ""
    cut: bool = False  # the text was longer than DISPLAY_LIMIT: the page links to the whole of it


def part_text(content: Any) -> str:
    """The text of a part however the plugin nested it: "…", {"text": …} or {"content": …}."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        for key in ("text", "content", "thinking", "reasoning", "value"):
            value = content.get(key)
            if isinstance(value, str):
                return value
            if value is not None and key == "content":
                return part_text(value)
        return ""
    if isinstance(content, list):
        return "\n".join(filter(None, (part_text(item) for item in content)))
    return str(content)


def _state(content: dict) -> dict:
    # OpenCode's own tool part: {"tool": name, "callID", "state": {"status", "input", "output", "error"}}
    state = content.get("state")
    return state if isinstance(state, dict) else {}


def tool_call(content: Any) -> tuple[str, Any]:
    """(tool name, arguments) of a tool-call part, across the plugins' spellings: {toolName, args}
    (claude-code-sync, pi, droid), {id, name, args} (opencode-sync), {tool, state: {input}}
    (OpenCode's part as it stores it)."""
    if isinstance(content, dict):
        name = content.get("toolName") or content.get("name") or content.get("tool") or "tool"
        args = next((content[key] for key in ("args", "arguments", "input", "params") if key in content), None)
        if args is None:
            args = _state(content).get("input")
        if isinstance(args, str):
            with contextlib.suppress(ValueError):
                args = inputs.loads(args)
        return str(name), args
    return "tool", content


def call_output(content: Any) -> Any:
    """The result a tool-call part carries itself, or None: {result} (droid), {output} or {error}
    (opencode-sync), {state: {output} or {error}} (OpenCode's part)."""
    if not isinstance(content, dict):
        return None
    for where in (content, _state(content)):
        for key in ("result", "output", "error"):
            if where.get(key) is not None:
                return where[key]
    return None


def tool_output(content: Any) -> Any:
    if isinstance(content, dict):
        for key in ("result", "output", "content", "error"):
            if content.get(key) is not None:
                return content[key]
    return content


def pretty(value: Any) -> tuple[str, str]:
    """(text, language) for showing a value: JSON pretty-printed, strings as they are."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in "{[":
            try:
                return json.dumps(inputs.loads(stripped), indent=2, ensure_ascii=False), "json"
            except ValueError:
                pass
        return value, ""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str), "json"


def _cut(text: str) -> bool:
    return len(text) > DISPLAY_LIMIT


def message_blocks(text_content: str | None, parts) -> list[Block]:
    """What the viewer shows for one message, in order.

    Text parts win over `text_content` (plugins often send both with the same words); with no
    text part the text content is shown. `<thinking>` inside text becomes a thinking block.
    """
    blocks: list[Block] = []
    has_text_part = any(part.type in TEXT_TYPES and part_text(part.content).strip() for part in parts)
    has_thinking_part = any(part.type in THINKING_TYPES for part in parts)

    def add_text(text: str) -> None:
        for thought in _thinking_tag.findall(text):
            if not has_thinking_part and thought.strip():
                blocks.append(Block("thinking", render_markdown(thought.strip()), "Thinking", _cut(thought.strip())))
        text = _thinking_tag.sub("", text).strip()
        if text:
            blocks.append(Block("text", render_markdown(text), cut=_cut(text)))

    if not has_text_part and text_content:
        add_text(text_content)
    for part in parts:
        if part.type in TEXT_TYPES:
            add_text(part_text(part.content))
        elif part.type in THINKING_TYPES:
            thought = part_text(part.content).strip()
            if thought:
                blocks.append(Block("thinking", render_markdown(thought), "Thinking", _cut(thought)))
        elif part.type in TOOL_CALL_TYPES:
            name, args = tool_call(part.content)
            text, lang = pretty(args if args is not None else {})
            blocks.append(Block("tool_call", render_code(text, lang), name, _cut(text)))
            if (output := call_output(part.content)) is not None:
                text, lang = pretty(output)
                blocks.append(Block("tool_result", render_code(text, lang), "Result", _cut(text)))
        elif part.type in TOOL_RESULT_TYPES:
            text, lang = pretty(tool_output(part.content))
            blocks.append(Block("tool_result", render_code(text, lang), "Result", _cut(text)))
        elif part.content not in (None, "", {}, []):
            text, lang = pretty(part.content)
            blocks.append(Block("other", render_code(text, lang), part.type, _cut(text)))
    return blocks
