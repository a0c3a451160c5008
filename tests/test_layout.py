"""README.md's Layout section is the package's tree, and each folder says what it owns."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "densenet"


def layout_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Layout\n", 1)[1]
    return section.split("```\n", 2)[1]


def test_the_readme_layout_names_every_folder_of_the_package_and_no_other():
    named = set(re.findall(r"^  (\w+)/", layout_block(), flags=re.M))
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert named == folders
    assert {"tests", "docs"} <= set(re.findall(r"^(\w+)/", layout_block(), flags=re.M))


def test_every_folder_docstring_says_what_it_owns():
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and len(doc) > 40, f"{folder.name}/__init__.py has no docstring saying what the folder owns"
