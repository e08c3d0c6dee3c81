"""Session-state keys: each declared once, named for the page that owns it."""

from __future__ import annotations

import ast
from pathlib import Path

PAGES = Path(__file__).resolve().parents[2] / "pages"


def _declared_keys() -> list[tuple[str, str, str]]:
    """(module, constant, key) for every module-level ``NAME_KEY = "..."`` in pages/."""
    found = []
    for path in sorted(PAGES.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.endswith("_KEY"):
                        found.append((path.stem, target.id, node.value.value))
    return found


def test_every_key_is_declared_once():
    keys = [key for _, _, key in _declared_keys()]
    assert len(keys) > 20  # the pages do declare their keys this way
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []


def test_a_page_declares_only_its_own_keys_and_shared_ones_live_in_state():
    for module, constant, key in _declared_keys():
        if module == "state":
            continue
        assert key.startswith(f"{module}."), f"pages/{module}.py declares {constant} = {key!r}; a key two pages share belongs in pages/state.py"
