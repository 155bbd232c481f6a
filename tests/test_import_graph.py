"""The apps' modules import each other without cycles, and every function-level import of project
code says why it is there (tests/import_graph.py lists the graph)."""

from .import_graph import all_imports, cross_app_cycles, report


def test_no_import_cycle_spans_two_apps():
    imports = all_imports()
    assert cross_app_cycles(imports) == []
    # A function-level import that only dodges a cycle is still one.
    assert cross_app_cycles(imports, lazy=True) == []


def test_every_lazy_import_of_project_code_says_why():
    assert report(all_imports())["lazy_imports_without_reason"] == []
