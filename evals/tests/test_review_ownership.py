"""The review's columns live on sessions_app.Session, but evals owns them: evals.services is their
only writer (it records every change in the review history). This reads every module outside
evals (not tests or migrations) and fails on a write of one of them."""

import ast
import re
from pathlib import Path

from evals.services import REVIEW_COLUMNS
from sessions_app.admin import SessionAdmin

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = {*REVIEW_COLUMNS, "reviewed_by_id"}
WRITE_METHODS = {"update", "create", "get_or_create", "update_or_create", "bulk_create", "bulk_update", "save"}
# SQL that writes a column: `SET … eval_ready = …` or an INSERT naming it.
SQL_WRITE = re.compile(
    rf"\bSET\b[\s\S]*\b({'|'.join(COLUMNS)})\s*=|\bINSERT\b[\s\S]*\b({'|'.join(COLUMNS)})\b", re.IGNORECASE
)
# In-memory mirrors of a write evals.services just made, for the response (not written again).
MIRRORS = {("sessions_app/views/sessions.py", "eval_ready")}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        parts = relative.split("/")
        if (
            parts[0] in {"evals", ".venv", "data", "node_modules", "plugins"}
            or "tests" in parts
            or "migrations" in parts
        ):
            continue
        yield relative, ast.parse(path.read_text(), relative)


def _writes(relative, tree):
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr in COLUMNS and (relative, target.attr) not in MIRRORS:
                yield f"{relative}:{node.lineno} assigns .{target.attr}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITE_METHODS:
            named = {k.arg for k in node.keywords if k.arg} | {
                elt.value
                for k in node.keywords
                if k.arg in {"update_fields", "fields", "defaults"}
                for elt in ast.walk(k.value)
                if isinstance(elt, ast.Constant) and isinstance(elt.value, str)
            }
            for column in sorted(named & COLUMNS):
                yield f"{relative}:{node.lineno} .{node.func.attr}() writes {column}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_WRITE.search(node.value):
            yield f"{relative}:{node.lineno} SQL writes a review column"


def test_only_evals_writes_the_review_columns():
    found = [write for relative, tree in _modules() for write in _writes(relative, tree)]
    assert found == []


def test_the_check_sees_a_write():
    tree = ast.parse(
        "Session.objects.filter(pk=1).update(eval_status='golden')\n"
        "session.eval_notes = 'x'\n"
        "session.save(update_fields=['reviewed_at'])\n"
        "cursor.execute('UPDATE sessions_app_session SET eval_ready = true')\n"
    )
    assert len(list(_writes("sessions_app/example.py", tree))) == 4


def test_the_admin_shows_the_review_read_only():
    assert set(REVIEW_COLUMNS) <= set(SessionAdmin.readonly_fields)
