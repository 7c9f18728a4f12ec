"""The library never imports streamlit: it must work from a notebook, a script or a server."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import genesis

REPO = Path(__file__).resolve().parents[1]


def test_no_genesis_module_imports_streamlit():
    modules = ["genesis"] + [f"genesis.{m.name}" for m in pkgutil.walk_packages(genesis.__path__)]
    assert "genesis.modeling" in modules and "genesis.compat" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'streamlit')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_no_genesis_source_mentions_streamlit():
    for path in Path(genesis.__file__).parent.rglob("*.py"):
        source = path.read_text()
        assert "import streamlit" not in source and "from streamlit" not in source, path.name
