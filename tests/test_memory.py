"""keep_freed_memory(): glibc's malloc keeps freed buffers for reuse instead of handing them back to
the kernel, so buffers of the next pass need no fresh pages. It is process-wide: each check runs in a
fresh Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHURN = """
import json, resource, sys, torch
from genesis.memory import keep_freed_memory
kept = keep_freed_memory()
def a_pass():  # three 16 MiB buffers written and freed, as a large pass's activations are
    buffers = [torch.ones(4 << 20) for _ in range(3)]
    del buffers
a_pass()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    a_pass()
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    done = subprocess.run([sys.executable, "-c", CHURN], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["kept"] is True
    # 10 passes touch 30 buffers of 4096 pages; glibc's default faults in 4,000-120,000 of them again
    # (it depends on its adaptive thresholds), kept memory at most one buffer's worth.
    assert result["faults"] <= 6000, result


def test_the_library_leaves_malloc_alone():
    """Only our programs (app, CLI, benchmark) call it: importing and running the library does not."""
    for path in (REPO / "genesis").glob("*.py"):
        if path.name not in ("memory.py", "__main__.py"):
            assert "keep_freed_memory" not in path.read_text(), path.name
