"""The command line: train a few steps to a folder, then trace the saved model (text, JSON, CSV)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from genesis import Genesis, RoutingTrace, preset
from genesis import io as gio
from genesis.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "brackets"
    code = main(
        ["train", "--config", "tiny", "--task", "brackets", "--steps", "12", "--batch", "8", "--seq-len", "12",
         "--examples", "200", "--eval-every", "6", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    return out


def test_train_saves_a_loadable_model_with_its_record(trained_folder):
    assert (trained_folder / "model.safetensors").is_file()
    model = gio.load_folder(trained_folder)
    assert model.config.n_output == "sequence_classifier" and model.config.n_outputs == 2
    info = json.loads((trained_folder / "training.json").read_text())
    assert info["steps_done"] == 12 and info["stop_reason"] == "completed"
    assert [point["step"] for point in info["curve"]] == [0, 6, 12]


def test_trace_prints_a_readable_route(trained_folder, capsys):
    assert main(["trace", str(trained_folder), "--text", "(()())"]) == 0
    out = capsys.readouterr().out
    assert "6 tokens" in out
    assert out.count("section ") == 2 and "route " in out and "start " in out


def test_trace_writes_json_and_csv(trained_folder, tmp_path):
    json_path, csv_path = tmp_path / "trace.json", tmp_path / "route.csv"
    assert main(["trace", str(trained_folder), "--text", "(())", "--json", str(json_path), "--csv", str(csv_path)]) == 0
    trace = RoutingTrace.from_dict(json.loads(json_path.read_text()))
    table = pd.read_csv(csv_path)
    assert list(table.columns) == ["sample", "section", "step", "neuron"]
    assert len(table) == sum(len(route) for route in trace.sample_routes()[0])


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert main(["trace", str(tmp_path / "missing"), "--text", "hi"]) == 2
    assert main(["train", "--config", "nope.json", "--task", "copy", "--out", str(tmp_path / "x")]) == 2
    assert main(["train", "--config", "tiny", "--text", str(tmp_path / "none.txt"), "--out", str(tmp_path / "y")]) == 2
    (tmp_path / "a_file").write_text("x")
    assert main(["train", "--config", "tiny", "--task", "copy", "--out", str(tmp_path / "a_file")]) == 2
    assert main(["train", "--config", "tiny", "--task", "copy", "--device", "bogus", "--out", str(tmp_path / "z")]) == 2
    assert main(["trace", "tiny", "--text", "hi", "--csv", str(tmp_path / "no" / "such" / "x.csv")]) == 2
    bridge = tmp_path / "bridge"
    Genesis(preset("tiny", n_input="bridge")).save_pretrained(bridge)
    assert main(["trace", str(bridge), "--text", "hi"]) == 2
    err = capsys.readouterr().err  # also save_pretrained's progress bar
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 7 and "Traceback" not in err, err
    assert "is a file" in errors[3] and "'bogus' is not a device" in errors[4]
    assert "does not exist" in errors[5] and "reads floats" in errors[6]
    assert not (tmp_path / "z").exists()  # refused before any work


def test_module_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "genesis", "trace", "tiny", "--text", "hello"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "untrained 'tiny' model" in done.stdout


def test_outputs_are_checked_before_the_work(tmp_path, capsys):
    """A folder or file that cannot be written is refused at once, not after training."""
    (tmp_path / "a_file").write_text("x")
    train = ["train", "--config", "tiny", "--task", "copy", "--steps", "2", "--examples", "40"]
    assert main([*train, "--out", str(tmp_path / "a_file" / "sub")]) == 2
    assert main([*train, "--out", ""]) == 2
    assert main(["demo", "--steps", "1", "--out", str(tmp_path / "a_file")]) == 2
    assert main([*train, "--batch", "1000000", "--out", str(tmp_path / "big")]) == 2
    assert main(["trace", "tiny", "--text", "hi", "--json", str(tmp_path)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 5, errors
    assert "cannot create the folder" in errors[0] and "empty" in errors[1] and "is a file" in errors[2]
    assert errors[3].startswith("error: --batch 1000000:") and "is not a file name" in errors[4]
    assert not (tmp_path / "big").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a folder that refuses new files (/proc)")
def test_trace_writes_all_of_its_files_or_none(tmp_path, capsys):
    json_path = tmp_path / "trace.json"
    assert main(["trace", "tiny", "--text", "hi", "--json", str(json_path), "--csv", "/proc/route.csv"]) == 2
    assert "could not write '/proc/route.csv'" in capsys.readouterr().err
    assert not json_path.exists()


def test_numbers_out_of_range_are_usage_errors(capsys):
    for option, value, message in [
        ("--examples", "99999999999999", "must be at most 1,000,000"),
        ("--eval-every", "0", "must be at least 1"),
        ("--seed", "1e3", "'1e3' is not a whole number"),
    ]:
        with pytest.raises(SystemExit) as stop:
            main(["train", "--task", "copy", option, value, "--out", "unused"])
        assert stop.value.code == 2
        assert f"argument {option}: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("trainer", ["loop", "hf"])
def test_a_diverging_run_exits_with_an_error_and_saves_nothing(tmp_path, capsys, trainer):
    out = tmp_path / "diverged"
    code = main(["train", "--config", "tiny", "--task", "copy", "--steps", "5", "--examples", "40", "--batch", "4",
                 "--lr", "1e6", "--warmup", "0", "--trainer", trainer, "--checkpoint-every", "1",
                 "--out", str(out)])  # fmt: skip
    assert code == 1 and not (out / "model.safetensors").exists()  # the hf Trainer used to save NaN weights
    assert not out.exists()  # the folder the run made goes too, with the hf Trainer's checkpoints
    code = main(["train", "--config", "tiny", "--task", "copy", "--steps", "5", "--examples", "40", "--batch", "4",
                 "--lr", "1e6", "--warmup", "0", "--trainer", trainer, "--out", str(tmp_path / "new" / "deeper")])  # fmt: skip
    assert code == 1 and not (tmp_path / "new").exists()  # and the parents it made
    assert "NaN or infinite" in capsys.readouterr().err
    kept = tmp_path / "kept"  # a user's own folder stays, with what was in it, without this run's files
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    code = main(["train", "--config", "tiny", "--task", "copy", "--steps", "5", "--examples", "40", "--batch", "4",
                 "--lr", "1e6", "--warmup", "0", "--trainer", trainer, "--checkpoint-every", "1",
                 "--out", str(kept)])  # fmt: skip
    assert code == 1 and sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


def test_train_says_which_config_fields_the_task_changes(tmp_path, capsys):
    code = main(["train", "--config", "classifier", "--corpus", "stdlib", "--steps", "1", "--block", "40",
                 "--batch", "2", "--out", str(tmp_path / "lm")])  # fmt: skip
    assert code == 0
    note = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("note:"))
    assert "n_output 'sequence_classifier' → 'causal_lm'" in note


def test_a_learning_rate_too_large_for_float32_is_refused_before_anything_is_made(tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["train", "--config", "tiny", "--task", "copy", "--steps", "5", "--lr", "1e38", "--out", str(out)])
    assert code == 2 and "lr must be > 0 and at most 1e+06, got 1e+38" in capsys.readouterr().err
    assert not out.exists()  # it used to crash in AdamW, after making the folder


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_finishes_the_step_saves_and_says_stopped(tmp_path):
    out = tmp_path / "interrupted"
    command = [sys.executable, "-m", "genesis", "train", "--config", "tiny", "--task", "copy", "--examples", "200",
               "--steps", "100000", "--batch", "4", "--out", str(out)]  # fmt: skip
    run = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in run.stderr:  # "training N parameters on ..." comes just before the first step
            if line.startswith("training "):
                break
        time.sleep(3)  # a few steps
        run.send_signal(signal.SIGINT)
        stdout, _ = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 0, stdout
    assert stdout.strip().splitlines()[-1].startswith("stopped after") and "saved to" in stdout
    info = json.loads((out / "training.json").read_text())
    assert info["stop_reason"] == "stopped" and 0 < info["steps_done"] < 100000
    assert gio.load_folder(out).config.n_output == "causal_lm"


def test_a_learning_rate_below_the_default_floor_trains(tmp_path):
    out = tmp_path / "slow"  # the default min_lr (1e-4) used to refuse any lr below it
    assert main(["train", "--config", "tiny", "--task", "copy", "--steps", "2", "--examples", "40", "--batch", "4",
                 "--lr", "5e-5", "--out", str(out)]) == 0  # fmt: skip
    assert json.loads((out / "training.json").read_text())["training"]["min_lr"] == 5e-5


def test_trace_files_are_all_or_nothing_and_keep_what_was_there(tmp_path, capsys):
    model = tmp_path / "m"
    Genesis(preset("tiny")).save_pretrained(model)
    mine = tmp_path / "mine.json"
    mine.write_text("my own notes")
    code = main(["trace", str(model), "--text", "hi", "--json", str(mine), "--csv", "/proc/genesis-no.csv"])
    assert code != 0 and mine.read_text() == "my own notes"  # it used to be deleted by the rollback
    same = tmp_path / "same.out"
    assert main(["trace", str(model), "--text", "hi", "--json", str(same), "--csv", str(same)]) == 2
    assert "name the same file" in capsys.readouterr().err and not same.exists()


@pytest.mark.parametrize("trainer", ["loop", "hf"])
def test_checkpoints_of_an_earlier_run_are_not_overwritten(tmp_path, capsys, trainer):
    out = tmp_path / "run"
    args = ["train", "--config", "tiny", "--task", "copy", "--steps", "2", "--examples", "40", "--batch", "4",
            "--trainer", trainer, "--out", str(out)]  # fmt: skip
    assert main([*args, "--checkpoint-every", "1"]) == 0
    first = {p.name: (p / "model.safetensors").read_bytes() for p in out.glob("checkpoint-*")}
    assert sorted(first) == ["checkpoint-1", "checkpoint-2"]
    capsys.readouterr()
    assert main([*args, "--checkpoint-every", "1", "--seed", "7"]) == 2
    assert "already holds checkpoint-1, checkpoint-2 from an earlier run" in capsys.readouterr().err
    assert {p.name: (p / "model.safetensors").read_bytes() for p in out.glob("checkpoint-*")} == first
    assert main(args) == 0  # without checkpoints, the folder takes the new model as before
