"""Command line: train a model, trace a route, rebuild the demo model.

python -m genesis train --config app --corpus stdlib --steps 500 --out runs/lm
python -m genesis train --config classifier --task brackets --steps 300 --out runs/brackets
python -m genesis train --config tiny --text notes.txt --steps 200 --batch 8 --lr 2e-3 --out runs/notes
torchrun --nproc_per_node 2 -m genesis train --trainer hf --task copy --steps 200 --out runs/ddp
python -m genesis trace runs/lm --text "Return the sum of the values."
python -m genesis trace demo --text "Hello" --json trace.json
python -m genesis demo            # retrain assets/demo (the app's default model)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import torch

from . import io as gio
from . import training
from .configuration import FIELDS, PRESETS, ConfigError, GenesisConfig, SizeError, check_size, human, plural, preset
from .data import DataError, load_text_file
from .modeling import Genesis, default_device
from .probes import encode_for
from .tokenization import TextError

DEMO_DIR = Path(__file__).resolve().parents[1] / "assets" / "demo"


class CommandError(Exception):
    """A problem with the user's arguments: printed without a traceback."""


# -- shared ---------------------------------------------------------------------------------------


def read_config(name_or_path: str) -> GenesisConfig:
    if name_or_path in PRESETS:
        return preset(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise CommandError(f"--config: {name_or_path!r} is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    return gio.read_config(path)


def load_any_model(name_or_folder: str) -> tuple[Genesis, str]:
    """A saved model folder, 'demo' (assets/demo), or a preset name (untrained weights)."""
    if name_or_folder == "demo":
        return gio.load_folder(DEMO_DIR), "the demo model"
    if name_or_folder in PRESETS:
        return Genesis(preset(name_or_folder)).eval(), f"an untrained {name_or_folder!r} model"
    folder = Path(name_or_folder)
    if not folder.is_dir():
        raise CommandError(f"{name_or_folder!r} is neither a model folder, 'demo', nor a preset ({', '.join(PRESETS)})")
    return gio.load_folder(folder), str(folder)


def task_from_args(args) -> training.Task:
    if args.text:
        return training.as_task(load_text_file(args.text), args.block, name=Path(args.text).name)
    return training.load_data(
        args.task or args.corpus or training.CORPUS, args.block, args.examples, args.seq_len, args.seed
    )


# -- train ----------------------------------------------------------------------------------------


def _progress(steps: int):
    """A tqdm bar plus a line per evaluation; a plain line per evaluation without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with transformers; keep working without it
        tqdm = None
    bar = tqdm(total=steps, unit="step", dynamic_ncols=True) if tqdm else None

    def callback(event: training.TrainingEvent) -> None:
        if bar is not None and event.step and event.train_loss is not None:  # not the evaluation after a stop
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=f"{event.train_loss:.3f}", lr=f"{event.lr:.1e}", tok_s=f"{event.tokens_per_s:,.0f}")
        if event.val_loss is not None:
            line = f"step {event.step:5d}  val loss {event.val_loss:.4f}"
            if event.val_accuracy is not None:
                line += f"  accuracy {event.val_accuracy:.1%}"
            if event.snapshot is not None:
                starts = ", ".join(f"s{i}: {_top(s)}" for i, s in enumerate(event.snapshot.start))
                line += f"  routes {event.snapshot.distinct_routes}/{event.snapshot.samples} distinct, starts {starts}"
            (bar.write if bar is not None else print)(line)

    return callback, bar


def _top(distribution: list[float]) -> str:
    best = max(range(len(distribution)), key=distribution.__getitem__)
    return f"{best} ({distribution[best]:.0%})"


def writable_file(option: str, path: str | None) -> None:
    """Refuse before any work a file option that cannot be written (the work would be lost)."""
    if path is None:
        return
    folder = Path(path).resolve().parent
    if not path.strip() or Path(path).is_dir():
        raise CommandError(f"{option}: {path!r} is not a file name")
    if not folder.is_dir():
        raise CommandError(f"{option}: the folder {str(Path(path).parent)!r} does not exist")
    if not os.access(folder, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
        raise CommandError(f"{option}: {path!r} is not writable here")


def output_folder(option: str, path: str) -> Path:
    """Create the folder a model is saved into before the work starts: a bad one is refused at once."""
    folder = Path(path)
    if not path.strip():
        raise CommandError(f"{option}: empty; give the folder to save the model into")
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{option}: {path!r} is a file; the model is saved into a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CommandError(f"{option}: cannot create the folder {path!r} ({e.strerror or e})") from None
    if not os.access(folder, os.W_OK):
        raise CommandError(f"{option}: the folder {path!r} is not writable")
    return folder


def write_text(option: str, path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise CommandError(f"{option}: could not write {path!r} ({e.strerror or e})") from None


def device_from(name: str) -> torch.device:
    if name == "auto":
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CommandError(f"--device: {name!r} is not a device (cpu, cuda, cuda:1, auto, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommandError(f"--device: {name!r}, but no CUDA GPU is available here")
    if device.type not in ("cpu", "cuda") and not (device.type == "mps" and torch.backends.mps.is_available()):
        raise CommandError(f"--device: {name!r} is not available here (cpu, cuda, cuda:1, auto)")
    return device


def train_command(args) -> int:
    if args.out.strip() and Path(args.out).exists() and not Path(args.out).is_dir():
        raise CommandError(f"--out: {args.out!r} is a file; the model is saved into a folder")
    device = device_from(args.device)
    task = task_from_args(args)
    asked = read_config(args.config)
    config = training.config_for_task(asked, task)
    changed = [
        f"{k} {getattr(asked, k)!r} → {getattr(config, k)!r}" for k in FIELDS if getattr(asked, k) != getattr(config, k)
    ]
    if changed:  # e.g. a classifier config given a corpus, or a longer --seq-len than its positions
        print(f"note: the task needs {', '.join(changed)}", file=sys.stderr)
    try:
        check_size(config, batch_size=args.batch, seq_len=task.seq_len)
    except SizeError as e:
        raise CommandError(f"--batch {args.batch}: {e}") from None
    recipe = training.TrainingConfig(  # checked before the --out folder is made: a bad --lr leaves nothing
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        min_lr=min(training.TrainingConfig.min_lr, args.lr),  # the default 1e-4, or lr when lower
        warmup=min(args.warmup, args.steps // 2),
        block_size=args.block,
        eval_every=args.eval_every or max(1, args.steps // 10),
        seed=args.seed,
        early_stop_patience=args.patience,
        output_dir=args.out,
        checkpoint_every=args.checkpoint_every,
    )
    # The outermost folder this run creates (--out a/b with neither there: a), if any.
    out = Path(args.out).absolute()
    made = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    output_folder("--out", args.out)
    if args.checkpoint_every:  # checkpoint-N of this run would replace an earlier run's, or sit among them
        earlier = sorted((p.name for p in Path(args.out).glob("checkpoint-*")), key=lambda n: (len(n), n))
        if earlier:
            raise CommandError(
                f"--out: {args.out!r} already holds {', '.join(earlier[:3])}{' …' if len(earlier) > 3 else ''} from "
                "an earlier run, which this run's checkpoints would replace or mix with: choose a new folder, "
                "or move them away"
            )

    def diverged(message: str) -> int:
        if made is not None:  # the folders are this run's, and nothing in them is worth keeping
            shutil.rmtree(made, ignore_errors=True)
        print(f"error: {message} (nothing saved to {args.out})", file=sys.stderr)
        return 1

    torch.manual_seed(args.seed)
    model = Genesis(config).to(device)
    print(f"training {human(model.num_parameters())} parameters on {task.describe()}", file=sys.stderr)
    if args.trainer == "hf":
        trainer = training.make_trainer(model, task, recipe, args.out)
        earlier = set(Path(args.out).glob("checkpoint-*"))
        trainer.train()
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):  # the Trainer saves NaNs
            for folder in set(Path(args.out).glob("checkpoint-*")) - earlier:  # its checkpoints of this run too
                shutil.rmtree(folder, ignore_errors=True)
            return diverged("training diverged: the weights are NaN or infinite")
        trainer.save_model(args.out)
        if trainer.is_world_process_zero():
            info = dict(task=task.describe(), training=recipe.to_dict(), log=trainer.state.log_history)
            (Path(args.out) / "training.json").write_text(json.dumps(info, indent=2) + "\n")
            (Path(args.out) / "training_args.bin").unlink(missing_ok=True)  # a pickle; training.json says it all
        return 0
    stop = {"requested": False}

    def interrupt(*_):  # Ctrl-C: finish the step, save, and stop
        stop["requested"] = True

    previous = signal.signal(signal.SIGINT, interrupt)
    callback, bar = _progress(recipe.steps)
    try:
        result = training.train(model, task, recipe, callback, should_stop=lambda: stop["requested"])
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
    if result.stop_reason == training.DIVERGED:
        return diverged(training.diverged_message(result))
    print(
        f"{result.stop_reason} after {plural(result.steps_done, 'step')} in {result.seconds:.0f} s: "
        f"train loss {result.final_train_loss:.4f}, val loss {result.final_val_loss:.4f}; saved to {args.out}"
    )
    return 0


# -- trace ----------------------------------------------------------------------------------------


def describe_route(trace, sample: int = 0) -> str:
    """A readable route per section: the start vote, every hop with voltage vs threshold, why it stopped."""
    lines = []
    for st in trace.sample_sections(sample):
        column = st.column(sample)
        votes = "  ".join(f"{c.neuron}:{c.voltages[column]:.3f}" for c in st.indexer)
        lines.append(f"section {st.section}: start {st.start}" + (f"  (indexer votes {votes})" if votes else ""))
        for hop in st.hops_of(sample):  # its own: in a batch the route may go on after it stopped
            chosen = next((c for c in hop.candidates if c.neuron == hop.chosen), None)
            voltage = chosen.voltages[column] if chosen else float("nan")
            verdict = "fires" if hop.passed[column] else "stops"
            others = ", ".join(f"{c.neuron}:{c.voltages[column]:.3f}" for c in hop.candidates if c.neuron != hop.chosen)
            lines.append(
                f"  {hop.source} -> {hop.chosen}: v={voltage:.3f} vs threshold {hop.threshold:.3f}: {verdict}"
                + (f"  (other candidates {others})" if others else "")
            )
        route = st.route_of(sample)
        lines.append(
            f"  route {' -> '.join(map(str, route))}  ({len(route)} fired; {st.stop_reason_of(sample) or 'done'})"
        )
    return "\n".join(lines)


def trace_command(args) -> int:
    writable_file("--json", args.json)
    writable_file("--csv", args.csv)
    if args.json and args.csv and Path(args.json).resolve() == Path(args.csv).resolve():
        raise CommandError(f"--json and --csv name the same file ({args.json!r}): give each its own")
    model, label = load_any_model(args.model)
    ids, note = encode_for(model.config, args.text)  # refuses a model that reads floats
    if note:
        print(note, file=sys.stderr)
    trace = model.routes(torch.tensor([ids]))  # only the routing: no outputs computed
    files = {}  # made first, then written: a failing table does not leave half the output behind
    if args.json:
        files[("--json", args.json)] = json.dumps(trace.to_dict(), indent=2) + "\n"
    if args.csv:
        files[("--csv", args.csv)] = trace.to_frame(args.table).to_csv(index=False)
    written: list[str] = []
    before = {path: Path(path).read_bytes() if Path(path).is_file() else None for _, path in files}
    for (option, path), text in files.items():
        try:
            write_text(option, path, text)
        except CommandError:
            for done in written:  # all or nothing: what was there before comes back
                if before[done] is None:
                    Path(done).unlink(missing_ok=True)
                else:
                    Path(done).write_bytes(before[done])
            raise
        written.append(path)
    for path in written:
        print(f"wrote {path}")
    if not args.json and not args.csv:
        print(f"{label}, {plural(len(ids), 'token')}, {plural(trace.count, 'neuron')} fired")
        print(describe_route(trace))
    return 0


# -- demo -----------------------------------------------------------------------------------------


def demo_command(args) -> int:
    output_folder("--out", args.out)
    callback, bar = _progress(args.steps)
    try:
        _, info = training.build_demo(args.out, args.steps, callback)
    finally:
        if bar is not None:
            bar.close()
    print(f"{info['summary']}; saved to {args.out}")
    return 0


# -- parser ---------------------------------------------------------------------------------------

MAX_EXAMPLES = 1_000_000  # a synthetic task is built in memory, one Python string per example


def whole(low: int, high: int = 2**63 - 1):
    """An argparse type: an integer in [low, high], or a one-line usage error saying so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:,}, got {value:,}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high:,}, got {value:,}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m genesis", description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)

    t = commands.add_parser("train", help="train a model and save it (safetensors)")
    t.add_argument("--config", default="app", help=f"a preset ({', '.join(PRESETS)}) or a config JSON file")
    data = t.add_mutually_exclusive_group()
    data.add_argument("--task", choices=[*training.gdata.TASKS, *training.gdata.LM_TASKS], help="a synthetic task")
    data.add_argument("--corpus", choices=[training.CORPUS], help="the standard library's docstrings")
    data.add_argument("--text", help="a UTF-8 .txt file to learn as a byte-level LM")
    t.add_argument("--steps", type=whole(1), default=500)
    t.add_argument("--batch", type=whole(1), default=12)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--warmup", type=whole(0), default=50)
    t.add_argument("--block", type=whole(1), default=64, help="window length for text")
    t.add_argument("--examples", type=whole(2, MAX_EXAMPLES), default=4000, help="synthetic task size")
    t.add_argument("--seq-len", type=whole(1), default=24, help="synthetic task sequence length")
    t.add_argument("--eval-every", type=whole(1), default=None)
    t.add_argument("--patience", type=whole(1), default=None, help="early stop after N evaluations without progress")
    t.add_argument("--checkpoint-every", type=whole(1), default=None, help="save --out/checkpoint-N every N steps")
    t.add_argument("--seed", type=whole(0), default=0)
    t.add_argument("--device", default="auto")
    t.add_argument("--trainer", choices=["loop", "hf"], default="loop", help="hf: transformers.Trainer (torchrun/DDP)")
    t.add_argument("--out", required=True, help="output folder")
    t.set_defaults(run=train_command)

    r = commands.add_parser("trace", help="run one text and show (or save) its route")
    r.add_argument("model", help="a saved model folder, 'demo', or a preset (untrained)")
    r.add_argument("--text", required=True)
    r.add_argument("--json", help="write the whole trace as JSON here")
    r.add_argument("--csv", help="write a table here (see --table)")
    r.add_argument("--table", choices=["route", "candidates"], default="route")
    r.set_defaults(run=trace_command)

    d = commands.add_parser("demo", help="retrain the demo model in assets/demo")
    d.add_argument("--out", default=str(DEMO_DIR))
    d.add_argument("--steps", type=whole(1), default=training.demo_recipe()[1].steps)
    d.set_defaults(run=demo_command)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (CommandError, ConfigError, gio.LoadError, DataError, TextError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from .memory import keep_freed_memory

    keep_freed_memory()  # our process: malloc keeps freed buffers for the next pass (genesis/memory.py)
    sys.exit(main())
