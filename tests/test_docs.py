"""docs/architecture.md names what the code has, and the README sends readers only to files
that ship with the repository."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import shared.keys
import shared.ports

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURE = (REPO / "docs" / "architecture.md").read_text()


def _public_functions(module) -> list[str]:
    return [
        name
        for name, obj in vars(module).items()
        if inspect.isfunction(obj)
        and obj.__module__ == module.__name__
        and not name.startswith("_")
    ]


def test_every_key_builder_is_in_the_key_table():
    missing = [name for name in _public_functions(shared.keys) if f"`{name}`" not in ARCHITECTURE]
    assert missing == []


def test_every_port_and_its_adapters_are_named():
    ports = [
        name
        for name, obj in vars(shared.ports).items()
        if inspect.isclass(obj) and inspect.isabstract(obj) and obj.__module__ == "shared.ports"
    ]
    assert len(ports) >= 7
    missing = [name for name in ports if f"`{name}`" not in ARCHITECTURE]
    assert missing == []
    adapters = []
    for folder in ("aws", "embedded", "workforce"):
        for path in (REPO / "shared" / folder).glob("*.py"):
            tree = ast.parse(path.read_text())
            adapters += [
                node.name
                for node in tree.body
                if isinstance(node, ast.ClassDef)
                and not node.name.startswith("_")
                and any(getattr(base, "id", "") in ports for base in node.bases)
            ]
    assert len(adapters) >= 10
    assert [name for name in adapters if f"`{name}`" not in ARCHITECTURE] == []


def test_the_readme_links_only_to_files_in_the_repo():
    readme = (REPO / "README.md").read_text()
    assert "../shared/" not in readme
    assert "(docs/architecture.md)" in readme
    for target in re.findall(r"\]\(([^)#:]+)\)", readme):
        assert (REPO / target).exists(), f"README links to {target}, which is not in the repo"
