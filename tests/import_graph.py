"""The import graph of the project's own code: which app imports which, where modules import
each other in a cycle, and which imports of project code sit inside a function (lazy).

    .venv/bin/python tests/import_graph.py            # edges between apps, cycles, lazy imports
    .venv/bin/python tests/import_graph.py --json     # the same as one JSON object

`tests/test_import_graph.py` holds the project to it: no cycle between modules of different apps
(a cycle inside one app is that app's business), and every lazy import of project code carries
a comment on its line or the line above saying why it is lazy.

Only non-test code counts: tests, migrations and benchmarks import whatever they exercise.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("opensync", "accounts", "sessions_app", "search", "evals")


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported project module, dotted
    line: int
    lazy: bool  # inside a function or method body
    commented: bool  # a comment on the line or the line above


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).parts
            if "tests" in rel or "migrations" in rel:
                continue
            modules[_module_name(path)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest project module that `name` (a module or a name inside one) refers to."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


_PRAGMA = re.compile(r"(noqa(:\s*[A-Z0-9, ]+)?|type:\s*ignore(\[[^\]]*\])?)")


def _has_comment(lines: list[str], line: int) -> bool:
    """A comment with words in it (not only a `noqa` or `type: ignore` pragma) on the line or the
    line above."""
    here = lines[line - 1]
    above = lines[line - 2].strip() if line >= 2 else ""
    comments = [here.partition("#")[2], above[1:] if above.startswith("#") else ""]
    return any(re.search(r"[A-Za-z]{3}", _PRAGMA.sub("", text)) for text in comments)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, True, type_checking)
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # typing-only imports never run
            if isinstance(child, ast.Import | ast.ImportFrom):
                names: list[str] = []
                if isinstance(child, ast.Import):
                    names = [alias.name for alias in child.names]
                else:
                    base = child.module or ""
                    if child.level:
                        anchor = package.split(".")
                        anchor = anchor[: len(anchor) - child.level + 1]
                        base = ".".join([*anchor, base] if base else anchor)
                    names = [f"{base}.{alias.name}" for alias in child.names]
                for name in names:
                    target = _resolve(name, modules)
                    if target and target != module:
                        found.append(Import(module, target, child.lineno, lazy, _has_comment(lines, child.lineno)))
            visit(child, lazy, type_checking)

    visit(tree, False, False)
    return found


def app_of(module: str) -> str:
    return module.split(".")[0]


def all_imports() -> list[Import]:
    modules = project_modules()
    return [found for module, path in sorted(modules.items()) for found in imports_of(module, path, modules)]


def cross_app_cycles(imports: list[Import], *, lazy: bool = False) -> list[list[str]]:
    """Strongly connected components of the module graph that span more than one app: over the
    top-level imports (the ones that run at import time), or with `lazy` over every import (a
    function-level import that only dodges a cycle is still one)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for found in imports:
        if lazy or not found.lazy:
            graph[found.source].add(found.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len({app_of(m) for m in component}) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(set(graph) | {t for targets in graph.values() for t in targets}):
        if node not in index:
            strongconnect(node)
    return components


def report(imports: list[Import]) -> dict:
    edges: dict[str, int] = defaultdict(int)
    for found in imports:
        if app_of(found.source) != app_of(found.target):
            edges[f"{app_of(found.source)} -> {app_of(found.target)}"] += 1
    lazy = [found for found in imports if found.lazy]
    return {
        "app_edges": dict(sorted(edges.items())),
        "module_edges_between_apps": sorted(
            {f"{f.source} -> {f.target}" for f in imports if app_of(f.source) != app_of(f.target)}
        ),
        "cross_app_cycles": cross_app_cycles(imports),
        "cross_app_cycles_with_lazy": cross_app_cycles(imports, lazy=True),
        "lazy_imports": len(lazy),
        "lazy_imports_across_apps": sum(1 for f in lazy if app_of(f.source) != app_of(f.target)),
        "lazy_imports_without_reason": [f"{f.source}:{f.line} -> {f.target}" for f in lazy if not f.commented],
    }


def main() -> None:
    result = report(all_imports())
    if "--json" in sys.argv:
        print(json.dumps(result))
        return
    print("imports between apps (importing app -> imported app: import statements)")
    for edge, count in result["app_edges"].items():
        print(f"  {edge}: {count}")
    print(f"module pairs between apps: {len(result['module_edges_between_apps'])}")
    print(f"import cycles spanning apps: {len(result['cross_app_cycles'])}")
    for component in result["cross_app_cycles"]:
        print("  " + " <-> ".join(component))
    print(f"... counting lazy imports too: {len(result['cross_app_cycles_with_lazy'])}")
    for component in result["cross_app_cycles_with_lazy"]:
        print("  " + " <-> ".join(component))
    print(f"lazy imports of project code: {result['lazy_imports']} ({result['lazy_imports_across_apps']} across apps)")
    print(f"lazy imports without a comment saying why: {len(result['lazy_imports_without_reason'])}")
    for item in result["lazy_imports_without_reason"]:
        print(f"  {item}")


if __name__ == "__main__":
    main()
