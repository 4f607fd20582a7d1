"""The dashboard's launcher (``python -m ui.serve``, what ``make run`` starts): the imports it warms.

Every browser test starts the dashboard through it (tests/browser.py), so serving itself is tested there.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _page_imports(path: Path) -> set[str]:
    """Modules a page file imports at its top level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


def test_warm_imports_everything_the_first_page_imports():
    # In a fresh process, as the server has it: after warm(), the Affinity page and app.py import nothing new.
    wanted = sorted(_page_imports(ROOT / "pages" / "affinity.py") | _page_imports(ROOT / "app.py"))
    code = ("import json, sys; from ui.serve import warm; warm(); "
            f"print(json.dumps([m for m in {wanted!r} if m not in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert "streamlit" in wanted and "ui.state" in wanted  # the parse found the page's imports


def test_warm_leaves_a_broken_module_to_its_page():
    code = "from ui.serve import warm; warm(('json', 'no_such_module_here', 'csv')); print('ok')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
