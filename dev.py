#!/usr/bin/env python3
"""One entry point for setting up and running everything, needing nothing but Python.

python3 dev.py app      set up, then start the app (http://localhost:8501)
python3 dev.py test     set up (incl. Chromium for browser tests), then run the whole test suite
python3 dev.py bench    performance benchmark (ratios side by side)
python3 dev.py quality  quality benchmark (Genesis vs GPT-2 on tinyshakespeare)
python3 dev.py demo     retrain the demo model in assets/
python3 dev.py lint     ruff
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
TORCH = "torch==2.13.0"  # a CPU wheel here; an unpinned torch would pull a multi-GB CUDA build


def run(*cmd: str, **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def setup(dev: bool) -> None:
    """Create .venv and install requirements; skipped when nothing changed since the last time."""
    files = ["requirements.txt"] + (["requirements-dev.txt"] if dev else [])
    digest = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in files) + TORCH.encode()).hexdigest()[:16]
    stamp = VENV / f".installed-{digest}"
    if stamp.exists():
        return
    if not PY.exists():
        run(sys.executable, "-m", "venv", str(VENV))
    run(str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip")
    run(str(PY), "-m", "pip", "install", "-q", TORCH)
    run(str(PY), "-m", "pip", "install", "-q", "-r", files[-1])
    stamp.touch()


def chromium() -> None:
    """Debian's Chromium for the browser tests (Playwright cannot download browsers here)."""
    if shutil.which("chromium"):
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        run("apt-get", "update", "-q")
        run("apt-get", "install", "-y", "-q", "chromium")
    else:
        print("chromium not found: browser tests will be skipped (install Debian's chromium package)")


def main(argv: list[str]) -> int:
    task = argv[0] if argv else "help"
    rest = argv[1:]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if task == "app":
        setup(dev=False)
        os.execve(str(PY), [str(PY), "-m", "streamlit", "run", "app.py", *rest], env)
    elif task == "test":
        setup(dev=True)
        chromium()
        run(str(PY), "-m", "ruff", "check", ".")
        return subprocess.run([str(PY), "-m", "pytest", "-q", *rest], cwd=ROOT, env=env).returncode
    elif task == "bench":
        setup(dev=True)
        return subprocess.run([str(PY), "bench/bench_perf.py", *rest], cwd=ROOT, env=env).returncode
    elif task == "quality":
        setup(dev=True)
        return subprocess.run([str(PY), "bench/bench_quality.py", *rest], cwd=ROOT, env=env).returncode
    elif task == "demo":
        setup(dev=False)
        return subprocess.run([str(PY), "-m", "genesis", "demo", *rest], cwd=ROOT, env=env).returncode
    elif task == "lint":
        setup(dev=True)
        run(str(PY), "-m", "ruff", "check", ".")
        run(str(PY), "-m", "ruff", "format", "--check", ".")
    else:
        print(__doc__)
        return 0 if task in ("help", "-h", "--help") else 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
