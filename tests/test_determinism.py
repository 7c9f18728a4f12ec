"""Same config and seed -> the same weights, wiring and routes, in another process too, whatever
the global random state or hash seed there."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import torch

import genesis

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "tiny": genesis.preset("tiny").user_dict(),
    "classifier": genesis.preset("classifier").user_dict(),
    "sequential": genesis.preset("sequential").user_dict(),
    "per-sample": genesis.preset("tiny", n_routing="sample", n_seed=7).user_dict(),
    "app": genesis.preset("app").user_dict(),
}

# Runs in a fresh interpreter: the fingerprints of every case, as JSON on stdout.
CHILD = """
import hashlib, json, random, sys
import torch
import genesis

def fingerprint(fields):
    model = genesis.Genesis(genesis.GenesisConfig(**fields)).eval()
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    weights = digest.hexdigest()
    ids = torch.randint(0, 256, (3, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        trace = model(ids, trace=True).trace
    routes = [trace.sample_routes(), [s.alive for s in trace.sections]]
    return {"weights": weights, "wiring": model.neighbor_lists(), "routes": routes}

random.seed(int(sys.argv[1]))
torch.manual_seed(int(sys.argv[1]))
cases = json.loads(sys.stdin.read())
print(json.dumps({name: fingerprint(fields) for name, fields in cases.items()}))
"""


def fingerprints_in_new_processes(*settings: tuple[int, str]) -> list[dict]:
    """One fresh interpreter per (global seed, PYTHONHASHSEED), run side by side."""
    children = []
    for global_seed, hash_seed in settings:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(global_seed)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=ROOT,
            )  # fmt: skip
        )
    results = []
    for child in children:
        out, err = child.communicate(json.dumps(CASES), timeout=300)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_weights_wiring_and_routes_are_the_same_in_another_process():
    first, second = fingerprints_in_new_processes((1, "0"), (987654, "12345"))
    assert first == second
    # Different seeds give different models (the fingerprint is not blind).
    assert first["tiny"]["weights"] != first["per-sample"]["weights"]
    assert first["tiny"]["wiring"] != first["per-sample"]["wiring"]
    # And the wiring is the documented algorithm: a private random.Random(n_seed).
    for name, fields in CASES.items():
        assert first[name]["wiring"] == genesis.neighbor_wiring(genesis.GenesisConfig(**fields)), name


def test_wiring_and_forward_leave_the_global_random_state_alone():
    """The wiring uses a private random.Random; an eval-mode forward draws nothing. (Building does
    draw from torch's global generator: nn.Linear initialises itself before reset_parameters
    overwrites it from the model's own generator.)"""
    random.seed(3)
    python_state = random.getstate()
    model = genesis.Genesis(genesis.preset("tiny")).eval()
    assert random.getstate() == python_state
    torch.manual_seed(3)
    torch_state = torch.get_rng_state()
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3, 4]]), trace=True)
    assert random.getstate() == python_state
    assert torch.equal(torch.get_rng_state(), torch_state)
