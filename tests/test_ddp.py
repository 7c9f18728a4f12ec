"""DDP with 2 CPU processes (gloo) through transformers.Trainer, launched as users would launch it
(torchrun): the replicas stay identical and the loss falls, although routing leaves neurons unused.

The test starts torchrun on this very file; under torchrun, `__main__` trains and reports.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_process_ddp_keeps_replicas_identical_and_learns(tmp_path):
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    if sys.platform == "linux":
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        __file__,
        str(report),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=220)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["world_size"] == 2
    rank0, rank1 = result["checksums"]
    assert rank0 == rank1  # every parameter, bit for bit
    assert result["changed"]  # and training did move them
    losses = result["losses"]
    assert len(losses) >= STEPS // 2
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first - 0.5, losses
    assert result["fired"] < result["neurons"]  # a route leaves neurons (and their weights) unused


def worker(report: str) -> None:
    import torch
    import torch.distributed as dist

    from genesis import Genesis, preset, training

    config = preset("tiny", n_pos_size=16)  # d32, 2 sections of 6 neurons
    model = Genesis(config)
    initial = [p.detach().clone() for p in model.parameters()]
    task = training.load_data("copy", examples=800, seq_len=16)
    recipe = training.TrainingConfig(steps=STEPS, batch_size=8, lr=1e-2, warmup=4, min_lr=1e-3)
    trainer = training.make_trainer(
        model, task, recipe, Path(report).parent / "out", logging_steps=1, eval_strategy="no"
    )
    trainer.train()
    checksums = [float(p.detach().double().sum()) for p in model.parameters()]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, checksums)
    with torch.no_grad():  # a route that leaves neurons out: DDP must look for unused parameters
        fired = model.eval()(task.val.input_ids[:1]).neuron_activation_count
    if dist.get_rank() == 0:
        changed = any(not torch.equal(a, b.detach()) for a, b in zip(initial, model.parameters()))
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        payload = dict(
            world_size=dist.get_world_size(),
            checksums=gathered,
            changed=changed,
            losses=losses,
            fired=fired,
            neurons=config.n_sections * config.n_neurons,
        )
        Path(report).write_text(json.dumps(payload))
    dist.barrier()


if __name__ == "__main__":
    worker(sys.argv[1])
