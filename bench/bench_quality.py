"""Quality benchmark: Genesis vs GPT-2 as character-level language models on tinyshakespeare.

nanoGPT's CPU recipe for every model, through one loop (genesis.training.train): 90/10 split,
block 64, batch 12, 2000 iterations, AdamW lr 1e-3 with 100 warm-up steps and cosine decay to 1e-4,
gradient clipping at 1, dropout 0.1 everywhere (Genesis's units have it built in; GPT-2's defaults).
Every model is evaluated on the same 50 validation batches. The baseline is transformers' GPT-2
with 4 layers, 4 heads and 128 dims; candidates are Genesis configurations with no more parameters.

Genesis's somas average over the whole window, so in an LM the route of a window depends on its
later bytes (SPEC flaw 3): a few bits per window leak from the future. The "prefix" columns measure
this honestly: on a few validation windows, position t is predicted by the model run on bytes
0..t only (route included); the gap to the full-window loss on the same windows is the leak.

    python3 dev.py quality                      # the full run (tens of minutes on a small CPU)
    python3 dev.py quality --iters 200          # a quick comparison
    python3 dev.py quality --only gpt2,genesis-original
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import genesis  # noqa: E402
from genesis import data as gdata  # noqa: E402
from genesis.training import Batch, TrainingConfig, is_routed, make_optimizer, optimization_step, route_snapshot, train  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
BLOCK, BATCH, VOCAB = 64, 12, gdata.BYTE_VOCAB_SIZE

# Genesis candidates: (what it tests, config fields). All at the byte vocabulary and 64 positions.
APP = {k: v for k, v in genesis.PRESETS["app"].items() if k not in ("n_pos_size",)}
# Six sections one after another, each an attentive start neuron and one plain neuron it may hop to
# (no dendrites: with one candidate per hop, dendrites only feed the pass/stop voltage).
SEQUENTIAL = dict(
    n_dim=128,
    n_section="sequential",
    n_sections=6,
    n_neurons=2,
    n_attentive_neurons=1,
    n_attentive_neuron_heads=4,
    n_neighbors=1,
    n_dendritics=0,
    n_synapses=1,
)
CANDIDATES: dict[str, tuple[str, dict]] = {
    "genesis-original": ("the app config (d128, split, 2x16 neurons, 4 attentive), original routing", APP),
    "genesis-trainable": ("same, trainable routing (straight-through)", {**APP, "n_trainable_routing": True}),
    "genesis-sample": ("same, per-sample routing", {**APP, "n_routing": "sample"}),
    "genesis-sequential": ("6 sequential sections at d128, 2 neurons each (1 attentive), no dendrites", SEQUENTIAL),
    "genesis-sequential-trainable": ("same, trainable routing", {**SEQUENTIAL, "n_trainable_routing": True}),
}


def gpt2_baseline() -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        n_layer=4,
        n_head=4,
        n_embd=128,
        vocab_size=VOCAB,
        n_positions=BLOCK,
        bos_token_id=gdata.EOS_ID,
        eos_token_id=gdata.EOS_ID,
    )
    return GPT2LMHeadModel(config)


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def prefix_losses(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, alone: bool) -> tuple[float, float]:
    """(full-window loss, prefix loss) on windows x -> y. Prefix: position t sees bytes 0..t only.

    alone: run each window by itself (batch routing chooses by the batch mean, so a batch would mix
    the windows' routes); per-sample routing and GPT-2 can batch them.
    """
    model.eval()

    def logits_of(inputs: torch.Tensor) -> torch.Tensor:
        if alone:
            return torch.cat([model(input_ids=row.unsqueeze(0)).logits for row in inputs])
        return model(input_ids=inputs).logits

    full = F.cross_entropy(logits_of(x).reshape(-1, VOCAB), y.reshape(-1)).item()
    prefix = sum(
        F.cross_entropy(logits_of(x[:, : t + 1])[:, -1], y[:, t], reduction="sum").item() for t in range(BLOCK)
    )
    return full, prefix / y.numel()


def training_recipe(args) -> TrainingConfig:
    """The one recipe every model trains with (and the report records)."""
    return TrainingConfig(
        steps=args.iters,
        batch_size=BATCH,
        block_size=BLOCK,
        lr=1e-3,
        warmup=min(100, args.iters // 10),
        min_lr=1e-4,
        weight_decay=0.1,
        grad_clip=1.0,
        eval_every=args.eval_every or args.iters,
        eval_batches=args.eval_batches,
        eval_at_start=False,
        snapshot_samples=0,
        seed=args.seed,
        eval_seed=1,  # the same validation batches whatever the seed
    )


def run_one(name: str, model: torch.nn.Module, data, args) -> dict:
    recipe = training_recipe(args)
    print(f"\n== {name}: {parameters(model):,} parameters", flush=True)

    def show(event):
        if event.val_loss is not None:
            print(f"  step {event.step:5d}  train {event.train_loss:.3f}  val {event.val_loss:.3f}", flush=True)

    result = train(model, data, recipe, callback=show)
    routed = is_routed(model)
    full = prefix = fired = None
    if args.prefix_windows:
        windows_x, windows_y = gdata.get_batch(data[1], BLOCK, args.prefix_windows, torch.Generator().manual_seed(7))
        full, prefix = prefix_losses(model, windows_x, windows_y, alone=routed and model.config.n_routing == "batch")
        if routed:  # how much of the network a window's route uses, routed alone
            fired = sum(route_snapshot(model, Batch(windows_x)).route_length)
    return dict(
        name=name,
        parameters=parameters(model),
        val_loss=result.final_val_loss,
        train_loss=result.final_train_loss,
        tokens_per_s=result.tokens / max(result.seconds, 1e-9),
        train_tokens_per_s=result.events[-1].tokens_per_s,
        seconds=result.seconds,
        window_loss=full,
        prefix_loss=prefix,
        neurons_fired=fired,
        curve=[(e.step, e.val_loss) for e in result.evaluations],
        config=model.config.user_dict() if routed else None,
    )


def build(name: str, candidates: dict[str, tuple[str, dict]], seed: int = 0) -> torch.nn.Module:
    """A fresh model; `seed` changes GPT-2's initial weights and Genesis's (n_seed = 42 + seed)."""
    torch.manual_seed(seed)
    if name == "gpt2":
        return gpt2_baseline()
    fields = {**candidates[name][1], "n_vocab_size": VOCAB, "n_pos_size": BLOCK, "n_seed": 42 + seed}
    return genesis.Genesis(genesis.GenesisConfig(**fields))


def throughput(names: list[str], candidates, train_ids: torch.Tensor, repeats: int, steps: int = 3) -> dict[str, float]:
    """Training tokens/s of each model, measured side by side: every repeat times each model in turn
    on the same batches, so load on the machine hits all of them alike; the median of the repeats."""
    models = {name: build(name, candidates).train() for name in names}
    optimizers = {name: make_optimizer(model, TrainingConfig()) for name, model in models.items()}
    g = torch.Generator().manual_seed(3)
    batches = [Batch(*gdata.get_batch(train_ids, BLOCK, BATCH, g)) for _ in range(steps)]
    for name in names:  # warm-up
        optimization_step(models[name], optimizers[name], batches[0], 1.0)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            tick = time.perf_counter()
            for batch in batches:
                optimization_step(models[name], optimizers[name], batch, 1.0)
            times[name].append(time.perf_counter() - tick)
    return {name: steps * BATCH * BLOCK / statistics.median(t) for name, t in times.items()}


def table(rows: list[dict], iters: int) -> str:
    base = next((r for r in rows if r["name"] == "gpt2"), None)
    lines = [
        f"| model | parameters | val loss @{iters} | vs GPT-2 | train loss | tokens/s | speed vs GPT-2 | "
        "window loss* | prefix loss* | neurons fired* |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def number(value, form: str) -> str:
        return "" if value is None else format(value, form)

    for r in rows:
        delta = number(r["val_loss"] - base["val_loss"] if base else None, "+.3f")
        speed = r.get("tokens_per_s_side_by_side")
        ratio = (
            speed / base["tokens_per_s_side_by_side"]
            if base and speed and base.get("tokens_per_s_side_by_side")
            else None
        )
        lines.append(
            f"| {r['name']} | {r['parameters']:,} | {r['val_loss']:.3f} | {delta} | {r['train_loss']:.3f} | "
            f"{number(speed, ',.0f')} | {number(ratio, '.2f')}{'×' if ratio else ''} | {number(r['window_loss'], '.3f')} | "
            f"{number(r['prefix_loss'], '.3f')} | {number(r.get('neurons_fired'), '.1f')} |"
        )
    return "\n".join(lines)


def arguments(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="tinyshakespeare.txt")
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=None, help="evaluate every N steps (default: at the end)")
    parser.add_argument("--eval-batches", type=int, default=50)
    parser.add_argument("--prefix-windows", type=int, default=8, help="windows for the prefix-routing check (0: skip)")
    parser.add_argument("--only", default=None, help="comma-separated names (gpt2, " + ", ".join(CANDIDATES) + ")")
    parser.add_argument("--extra", default=None, help='JSON {"name": {config fields}} to add Genesis candidates')
    parser.add_argument("--speed-repeats", type=int, default=7, help="side-by-side throughput repeats (0: skip)")
    parser.add_argument("--merge", nargs="+", type=Path, help="combine the results of earlier (partial) runs")
    parser.add_argument("--seed", type=int, default=0, help="initial weights, batch order and dropout")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-quality.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.data.is_file():
        print(f"data not found: {args.data} (pass --data PATH)", file=sys.stderr)
        return 2
    data = gdata.split_corpus(gdata.load_text_file(args.data, max_bytes=50_000_000), 0.1)
    candidates = dict(CANDIDATES)
    for name, fields in json.loads(args.extra or "{}").items():
        candidates[name] = ("extra", fields)
    if args.merge:
        reports = [json.loads(path.read_text()) for path in args.merge]
        rows = [row for report in reports for row in report["results"]]
        args.iters = reports[0]["recipe"]["iters"]
        args.prefix_windows = reports[0].get("prefix_windows", args.prefix_windows)
        for row in rows:  # an extra candidate of an earlier run keeps its config
            if row["name"] not in candidates and row["name"] != "gpt2":
                candidates[row["name"]] = (row["description"], row["config"])
    else:
        names = args.only.split(",") if args.only else ["gpt2", *candidates]
        unknown = [n for n in names if n != "gpt2" and n not in candidates]
        if unknown:
            print(f"unknown model(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        rows = train_all(names, candidates, data, args)
    order = ["gpt2", *candidates]
    rows.sort(key=lambda row: order.index(row["name"]))
    if args.speed_repeats:
        print("\nmeasuring training throughput side by side…", flush=True)
        speeds = throughput([r["name"] for r in rows], candidates, data[0], args.speed_repeats)
        for row in rows:
            row["tokens_per_s_side_by_side"] = speeds[row["name"]]
    markdown = table(rows, args.iters)
    note = (
        f"*on {args.prefix_windows} validation windows. Window loss: each window run whole, as in training and in "
        "the val loss. Prefix loss: each position predicted from its prefix alone, route included, which is what "
        "generation sees; the gap is the whole-window soma at work (routes chosen with the future in view, and "
        "routes of short prefixes the model never trained on). Neurons fired: per window routed alone, all "
        "sections together."
    )
    print("\n" + markdown + "\n\n" + note)
    recipe = training_recipe(args)
    report = dict(
        recipe=dict(
            seed=recipe.seed,
            iters=recipe.steps,
            block=recipe.block_size,
            batch=recipe.batch_size,
            lr=recipe.lr,
            warmup=recipe.warmup,
            min_lr=recipe.min_lr,
        ),
        eval_batches=args.eval_batches,
        prefix_windows=args.prefix_windows,
        machine=dict(python=platform.python_version(), torch=torch.__version__, threads=torch.get_num_threads()),
        created=time.strftime("%Y-%m-%d %H:%M"),
        results=rows,
        markdown=markdown,
    )
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown + "\n\n" + note + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


def train_all(names: list[str], candidates, data, args) -> list[dict]:
    budget = parameters(gpt2_baseline())
    rows = []
    for name in names:
        model = build(name, candidates, args.seed)
        if parameters(model) > budget:
            print(f"skipping {name}: {parameters(model):,} parameters > GPT-2's {budget:,}")
            continue
        row = run_one(name, model, data, args)
        row["description"] = "GPT-2, 4 layers, 4 heads, 128 dims" if name == "gpt2" else candidates[name][0]
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
