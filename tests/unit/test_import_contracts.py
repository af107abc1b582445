"""Who may import whom: the process packages share `core` and `contracts` and never import one another.

An AST walk over every module of services/ and operator/, imports inside functions and under TYPE_CHECKING
included (a lazy import couples packages as much as a top-level one), so an import that breaks a rule fails
here with the file, the line and the rule. docs/architecture.md explains the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ALLOWED: dict[str, frozenset[str]] = {
    "contracts": frozenset(),
    "core": frozenset({"contracts"}),
    "gateway": frozenset({"core", "contracts"}),
    "worker": frozenset({"core", "contracts"}),
    "embedder": frozenset({"core", "contracts"}),
    "operator": frozenset({"contracts"}),
    # The command line is the composition root of every process: it starts each of them.
    "cli": frozenset({"core", "contracts", "gateway", "worker", "embedder"}),
}
"""Package -> the other packages it may import. `semantik` itself (the version) is open to all but contracts."""

CONTRACTS_MAY_NOT_IMPORT = ("sqlalchemy", "fastapi", "starlette", "httpx", "redis", "arq", "torch", "transformers")
"""What crosses a process boundary is defined without a database, a web framework, a queue or a model."""


def package_of(module: str) -> str | None:
    """The package a dotted module name belongs to; None outside Semantik's own code."""
    parts = module.split(".")
    if parts[0] == "semantik_operator":
        return "operator"
    if parts[0] != "semantik":
        return None
    # Anything else under semantik is the root package's own (the version); a module there is reported.
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "semantik"


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = relative.parts[1:]  # services/ or operator/
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, module) for every import anywhere in the file; `from a import b` yields a.b, which is a
    submodule or a name of a, so its package is a's either way."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}" if base else alias.name


def violations(root: Path) -> list[str]:
    found: list[str] = []
    files = sorted((root / "services").rglob("*.py")) + sorted((root / "operator").rglob("*.py"))
    for path in files:
        where = path.relative_to(root)
        module = module_name(path, root)
        importer = package_of(module)
        if importer not in ALLOWED:
            if module != "semantik":  # the root package holds the version and imports nothing
                found.append(f"{where}: module {module} is in no package the rules know ({', '.join(ALLOWED)})")
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, target in imported_modules(tree, module, path.name == "__init__.py"):
            imported = package_of(target)
            if importer == "contracts" and target.split(".")[0] in CONTRACTS_MAY_NOT_IMPORT:
                found.append(
                    f"{where}:{line}: contracts imports {target}; rule: contracts imports no "
                    f"{', '.join(CONTRACTS_MAY_NOT_IMPORT)}"
                )
            if imported is None or imported == importer:
                continue
            if imported == "semantik" and importer != "contracts":
                continue
            if imported not in ALLOWED[importer]:
                may = ", ".join(sorted(ALLOWED[importer])) or "nothing of semantik"
                found.append(f"{where}:{line}: {importer} imports {target}; rule: {importer} may import {may}")
    return found


def test_every_import_keeps_the_package_rules() -> None:
    assert violations(ROOT) == []


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_forbidden_import_is_reported_with_its_file_line_and_rule(tmp_path: Path) -> None:
    write(tmp_path, "services/semantik/__init__.py", '__version__ = "0"\n')
    write(tmp_path, "services/semantik/core/__init__.py", "")
    write(tmp_path, "services/semantik/core/engine.py", "from ..contracts import models\nfrom . import queue\n")
    write(tmp_path, "services/semantik/core/lazy.py", "def load():\n    from semantik.embedder import engine\n")
    write(tmp_path, "services/semantik/worker/main.py", "import os\n\nfrom semantik.gateway.operations import X\n")
    write(tmp_path, "services/semantik/contracts/wire.py", "import httpx\nfrom semantik import __version__\n")
    write(tmp_path, "services/semantik/contracts/ok.py", "import json\n\nfrom pydantic import BaseModel\n")
    write(tmp_path, "services/semantik/gateway/app.py", "from semantik import __version__\nfrom ..core import x\n")
    write(tmp_path, "services/semantik/tools/x.py", "")
    write(tmp_path, "operator/semantik_operator/handlers.py", "from semantik.core.errors import InvalidInputError\n")

    assert violations(tmp_path) == [
        "services/semantik/contracts/wire.py:1: contracts imports httpx; rule: contracts imports no "
        "sqlalchemy, fastapi, starlette, httpx, redis, arq, torch, transformers",
        "services/semantik/contracts/wire.py:2: contracts imports semantik.__version__; "
        "rule: contracts may import nothing of semantik",
        "services/semantik/core/lazy.py:2: core imports semantik.embedder.engine; rule: core may import contracts",
        "services/semantik/tools/x.py: module semantik.tools.x is in no package the rules know "
        "(contracts, core, gateway, worker, embedder, operator, cli)",
        "services/semantik/worker/main.py:3: worker imports semantik.gateway.operations.X; "
        "rule: worker may import contracts, core",
        "operator/semantik_operator/handlers.py:1: operator imports semantik.core.errors.InvalidInputError; "
        "rule: operator may import contracts",
    ]
