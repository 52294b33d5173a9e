"""Imports point one way down the layer table (STYLE.md), checked by reading the source.

Layers, bottom to top: protocol, registry, actors, serve_apps, actorchestra (the public
face). A module may import its own layer and the ones below it. Nothing imports
`serve_apps` except the CLI, the app builder and `serve_apps` itself. protocol/ and
registry/ stay free of the heavy runtime libraries, so the wire format and the book of
agents can be used (and unit tested) without Ray, a web framework or a database.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# folder -> rank; a module may import layers of equal or lower rank.
LAYERS: dict[str, int] = {
    "protocol": 0,
    "registry": 1,
    "actors": 2,
    "serve_apps": 3,
    "actorchestra": 4,
}
SUBPACKAGES = {"protocol", "registry", "actors", "serve_apps"}
SERVE_APPS_IMPORTERS = {"actorchestra/cli.py", "serve_apps/builder.py"}
HEAVY = {"ray", "fastapi", "starlette", "duckdb", "lancedb", "openai"}
LIGHT_LAYERS = {"protocol", "registry"}
# What protocol/ and registry/ may import besides the standard library and our own code.
LIGHT_ALLOWED = {"a2a", "pydantic", "httpx", "google"}


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: imports {self.imported!r}: {self.why}"


def layer_of_module(module: str) -> str | None:
    """The layer an absolute module name belongs to, None if it is not ours."""
    parts = module.split(".")
    if parts[0] != "actorchestra":
        return None
    if len(parts) > 1 and parts[1] in SUBPACKAGES:
        return parts[1]
    return "actorchestra"


def module_name_of(rel: str) -> str:
    """`actors/agent.py` -> `actorchestra.actors.agent`; `actorchestra/cli.py` -> ..."""
    parts = list(Path(rel).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts and parts[0] == "actorchestra":
        parts.pop(0)
    return ".".join(["actorchestra", *parts])


def imported_modules(tree: ast.AST, rel: str) -> list[tuple[int, str]]:
    """Every module a file imports (lazy and TYPE_CHECKING imports included), absolute.

    `from pkg import name` yields `pkg.name` as well as `pkg` (the name may be a
    submodule), so that `from actorchestra import serve_apps` is seen for what it is.
    """
    package = module_name_of(rel)
    if not rel.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts)
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module != "actorchestra":  # the bare facade package: judge by the names
                found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def check_source(rel: str, source: str) -> list[Violation]:
    """The layering violations of one file, given its path relative to the repo root."""
    own = Path(rel).parts[0]
    rank = LAYERS[own]
    tree = ast.parse(source, filename=rel)
    out: list[Violation] = []
    for line, module in imported_modules(tree, rel):
        target = layer_of_module(module)
        top = module.split(".")[0]
        if target is None:
            if own in LIGHT_LAYERS and top in HEAVY:
                out.append(Violation(rel, line, module, f"{own}/ must not import {top}"))
            elif (
                own in LIGHT_LAYERS
                and top not in sys.stdlib_module_names
                and top not in LIGHT_ALLOWED
                and top != "__future__"
            ):
                out.append(
                    Violation(
                        rel,
                        line,
                        module,
                        f"{own}/ may import only the standard library and {sorted(LIGHT_ALLOWED)}",
                    )
                )
            continue
        if LAYERS[target] > rank:
            out.append(
                Violation(rel, line, module, f"{own}/ must not import the {target} layer above it")
            )
        elif target == "serve_apps" and own != "serve_apps" and rel not in SERVE_APPS_IMPORTERS:
            out.append(
                Violation(
                    rel,
                    line,
                    module,
                    "only the CLI and the app builder may import serve_apps",
                )
            )
    return out


def source_files() -> list[str]:
    files = [
        p.relative_to(ROOT).as_posix()
        for layer in LAYERS
        for p in sorted((ROOT / layer).rglob("*.py"))
    ]
    return files


def test_the_walk_finds_every_layer() -> None:
    files = source_files()
    for layer in LAYERS:
        assert any(f.startswith(f"{layer}/") for f in files), f"no .py files under {layer}/"
    assert "serve_apps/builder.py" in files and "actorchestra/cli.py" in files


def test_imports_point_down_the_layer_table() -> None:
    violations = [v for rel in source_files() for v in check_source(rel, (ROOT / rel).read_text())]
    assert not violations, "layering violations (see STYLE.md):\n" + "\n".join(
        str(v) for v in violations
    )


# -- the checker itself must be able to fail -----------------------------------------------


@pytest.mark.parametrize(
    ("rel", "source", "imported"),
    [
        ("protocol/x.py", "from actorchestra.registry.registry import Registry\n", "registry"),
        ("protocol/x.py", "import actorchestra.actors.agent\n", "actors"),
        ("protocol/x.py", "from actorchestra import settings\n", "actorchestra.settings"),
        ("registry/x.py", "from actorchestra.actors import spec\n", "actors"),
        ("registry/x.py", "def f():\n    from actorchestra.cli import main\n", "cli"),
        ("actors/x.py", "from actorchestra.serve_apps.config import AppConfig\n", "serve_apps"),
        ("actors/sub/x.py", "from actorchestra import serve_apps\n", "serve_apps"),
        ("actors/x.py", "from actorchestra.settings import Settings\n", "settings"),
        ("serve_apps/x.py", "from actorchestra.cli import main\n", "cli"),
        ("actorchestra/settings.py", "import actorchestra.serve_apps.ingress\n", "serve_apps"),
        ("actorchestra/client.py", "from actorchestra.serve_apps import builder\n", "serve_apps"),
        ("protocol/x.py", "import ray\n", "ray"),
        ("protocol/x.py", "from fastapi import FastAPI\n", "fastapi"),
        ("registry/x.py", "from starlette.requests import Request\n", "starlette"),
        ("registry/x.py", "import duckdb\n", "duckdb"),
        ("protocol/x.py", "def f():\n    import lancedb\n", "lancedb"),
        ("registry/x.py", "from openai import AsyncOpenAI\n", "openai"),
        ("registry/x.py", "import yaml\n", "yaml"),
        ("protocol/sub/x.py", "from ...registry import models\n", "registry"),
    ],
)
def test_checker_catches_a_wrong_way_import(rel: str, source: str, imported: str) -> None:
    violations = check_source(rel, source)
    assert violations, f"the checker let {source.strip()!r} in {rel} pass"
    assert any(imported in v.imported for v in violations)
    assert all(v.file == rel for v in violations)
    assert rel in str(violations[0]) and imported in str(violations[0])


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("protocol/x.py", "from actorchestra.protocol.errors import ConfigError\nimport httpx\n"),
        ("protocol/x.py", "from a2a.types import a2a_pb2\nfrom google.protobuf import struct_pb2"),
        ("registry/x.py", "from actorchestra.protocol.cards import AgentInfo\nimport asyncio\n"),
        ("registry/x.py", "from . import models\nfrom .models import AgentEntry\n"),
        ("actors/x.py", "from actorchestra.registry.registry import Registry\nimport ray\n"),
        ("serve_apps/x.py", "from actorchestra.serve_apps.config import AppConfig\n"),
        ("serve_apps/builder.py", "from actorchestra.serve_apps.ingress import Ingress\n"),
        ("actorchestra/cli.py", "from actorchestra.serve_apps.builder import build_app\n"),
        ("actorchestra/x.py", "from actorchestra.actors.agent import Agent\n"),
        ("actorchestra/x.py", "from actorchestra import settings\n"),
    ],
)
def test_checker_accepts_imports_that_point_down(rel: str, source: str) -> None:
    assert check_source(rel, source) == []


def test_relative_imports_resolve_to_their_layer() -> None:
    tree = ast.parse("from ...registry.models import AgentEntry\nfrom . import y\n")
    modules = {m for _, m in imported_modules(tree, "actors/sub/x.py")}
    assert "actorchestra.registry.models" in modules
    assert "actorchestra.actors.sub.y" in modules
