"""The layers of slr, checked on the source: data flows one way and no package imports another
that imports it back. Function-level imports count too (they are how the CLI stays fast, not a
way around the layers)."""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "slr"

#: What each part of slr may import. The base modules (settings, config, errors, output_paths, atomic) are
#: below everything. Above them the library: data and models, then engine, extract and analysis;
#: ui renders what the library returns; the command line sits on top.
ALLOWED = {
    "base": {"base"},
    "data": {"base"},
    "models": {"base", "data"},
    "engine": {"base", "data", "models"},
    "extract": {"base", "data", "models", "engine"},
    "analysis": {"base", "data", "models", "engine", "extract"},
    "crossval": {"base", "data", "models", "engine", "extract", "analysis"},
    "importers": {"base", "data", "engine", "extract"},  # other tools' landmark files -> clips
    "ui": {"base", "data", "models", "engine", "extract", "analysis", "crossval", "importers"},
    "cli": {"base", "data", "models", "engine", "extract", "analysis", "crossval", "importers", "ui", "cli"},
}
BASE = {"settings", "config", "errors", "output_paths", "atomic", "__init__", "__version__"}
LIBRARY = ("data", "models", "engine", "extract", "analysis", "crossval", "importers")


def part_of(module: str) -> str | None:
    """'slr.engine.training' -> 'engine'; 'slr.cli_params' -> 'cli'; 'slr.errors' -> 'base'."""
    parts = module.split(".")
    if parts[0] != "slr":
        return None
    if len(parts) == 1:
        return "base"
    head = parts[1]
    if head in ("cli", "cli_params", "__main__"):
        return "cli"
    if head in BASE:
        return "base"
    return head


def imports_of(path: Path) -> set[str]:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "slr" or name.startswith("slr.")}


def edges() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> the files where it happens."""
    return _edges(PACKAGE)


@functools.lru_cache(maxsize=None)
def _edges(package: Path) -> dict[tuple[str, str], list[str]]:
    # Parsed once per package folder: the three checks above read the same tree (read-only).
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in package.rglob("*.py"):
        source = part_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for name in imports_of(path):
            target = part_of(name)
            if target is not None and target != source:
                found[(source, target)].append(str(path.relative_to(PACKAGE.parent)))
    return found


def test_every_import_goes_down_the_layers():
    wrong = [f"{a} -> {b} ({', '.join(sorted(set(files)))})" for (a, b), files in edges().items()
             if b not in ALLOWED.get(a, set())]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_library_never_imports_the_ui_or_the_command_line():
    wrong = [f"{a} -> {b}: {files}" for (a, b), files in edges().items() if a in LIBRARY and b in ("ui", "cli")]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_packages():
    graph = defaultdict(set)
    for a, b in edges():
        graph[a].add(b)
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in graph[node]:
            if nxt in trail:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif len(trail) < len(ALLOWED):
                visit(nxt, trail + [nxt])

    for start in list(graph):
        visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def test_the_checker_sees_a_cycle_and_a_wrong_direction(tmp_path, monkeypatch):
    """The checks above would pass on a checker that sees nothing: show that this one sees."""
    fake = tmp_path / "slr"
    (fake / "data").mkdir(parents=True)
    (fake / "engine").mkdir()
    (fake / "data" / "a.py").write_text("def f():\n    from slr.engine.b import g\n")
    (fake / "engine" / "b.py").write_text("from slr.data.a import f\nfrom slr.ui.console import out\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    found = edges()
    assert ("data", "engine") in found and ("engine", "data") in found and ("engine", "ui") in found
