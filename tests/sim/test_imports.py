"""sim/ sits below ffcl_hw/: no module of it imports the tool's package.

The host-link bench drives ffcl_hw's host library, but takes it by name from its runner
(FFCL_HOST_LIBRARY), so the floors stay golden <- rtl <- sim <- ffcl_hw.
"""

from __future__ import annotations

import ast
from pathlib import Path

SIM = Path(__file__).resolve().parents[2] / "sim"


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_sim_imports_nothing_from_the_floors_above_it():
    modules = sorted(SIM.glob("*.py"))
    assert len(modules) >= 8, f"only {len(modules)} modules found in {SIM}"
    upward = {path.name: sorted(name for name in _imported(path)
                                if name.split(".")[0] in {"ffcl_hw", "tests"})
              for path in modules}
    assert not {name: found for name, found in upward.items() if found}
