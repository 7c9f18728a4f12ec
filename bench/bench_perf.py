"""Performance benchmark: every number is a ratio of two contestants measured side by side in one run.

Each repeat runs both contestants one after the other (alternating which goes first), so load on a
shared machine hits both alike; the tables show medians over the repeats. For the app config
(d128, 2 sections x 16 neurons, 4 attentive, 4 heads, byte vocabulary) and the original's defaults
(d1280, 50257 tokens; built once, fewer repeats):

- forward (eval, no grad) of the fast routing vs the reference (SPEC followed literally), B=8 and B=1;
- forward with trace=True vs without (B=8, B=1, and the per-input routes below, one trace each);
- per-input routes: N inputs each routed as if alone (per-sample routing, one `Genesis.routes` call:
  a trace per input, no outputs; and the same call as a forward with all outputs) vs a loop of N
  batch-of-one forwards of the fast model;
- in forward and per-input routes, a third contestant: the original-style stand-in
  (bench/original_style.py, the original's module-per-part structure rebuilt from the article),
  whose ratios are printed as "(stand-in)";
- training tokens/s vs transformers' GPT-2 with about as many parameters, same loop (AdamW, fwd+bwd+step);
- achieved GFLOP/s of the fast forward (matmul FLOPs it really did) vs a large fp32 matmul;
- for forward and per-input routes, the *ceiling*: the share of the fast contestant's time spent in
  the arithmetic kernels every faithful path must run (GEMMs, LayerNorm, SiLU, attention; timed by
  torch's profiler in one extra run), and the speedup over the baseline that would follow if
  everything else took no time at all;
- for per-input routes, the GEMM bound: the speedup if the routes' matrix products ran at the rate
  of large 2048^2 products (timed alongside) and nothing else took any time, for any implementation.

Then a scale table (forward cost as n_neurons, n_neighbors, n_dim and length grow) and the app's
size budget. Results go to bench/results-perf.json as well.

    python3 dev.py bench                  # everything (several minutes on 2 cores)
    python3 dev.py bench --quick          # CI-sized: small inputs, few repeats, app config only
    python3 dev.py bench --threads 1      # pin torch's intra-op threads (default: torch's choice)
    python3 dev.py bench --only forward,training --configs app
    python3 dev.py bench --default-malloc # without keep_freed_memory() (the app, CLI and bench call it)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.original_style import OriginalStyle, rebuild  # noqa: E402
from genesis import Genesis, GenesisConfig, preset  # noqa: E402
from genesis.compat import to_original  # noqa: E402
from genesis.memory import keep_freed_memory  # noqa: E402

RESULTS = ROOT / "bench" / "results-perf.json"
LENGTH = 64
PARTS = ("forward", "trace", "per_sample", "training", "flops", "scale", "budget")


@dataclass
class Plan:
    """How much to measure: the full run, or --quick."""

    repeats: int  # forward-sized measurements (the original config uses a third, at least 2)
    per_sample_inputs: dict[str, int]  # per config
    loop_repeats: int
    train_steps: int  # steps per contestant (the original config takes a quarter); route lengths vary per step
    train_batch: dict[str, int]
    scale: bool


FULL = Plan(15, {"app": 512, "original": 16}, 5, 32, {"app": 12, "original": 2}, True)
QUICK = Plan(5, {"app": 32, "original": 4}, 1, 2, {"app": 12, "original": 1}, False)


# ---------------------------------------------------------------------------------------------
# Measuring


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]  # --clock cpu: this process's CPU seconds, steadier on a loaded machine with 1 thread


def side_by_side(contestants: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each contestant; every repeat runs all of them, the order alternating."""
    names = list(contestants)
    for name in names:  # warm-up: first-call allocations and lazy initialisation
        contestants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = clock()
            contestants[name]()
            times[name].append(clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def tokens(config: GenesisConfig, batch: int, length: int = LENGTH, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, min(config.n_vocab_size, 256), (batch, length), generator=g)


def build(config: GenesisConfig) -> Genesis:
    """A model in eval mode, with the app's size limits lifted (the original config is large)."""
    return Genesis(config, max_parameters=None, max_activation_bytes=None).eval()


def twin(model: Genesis, **fields) -> Genesis:
    """The same weights under other config fields."""
    other = build(GenesisConfig(**{**model.config.user_dict(), **fields}))
    other.load_state_dict(model.state_dict())
    return other.eval()


def forward(model: Genesis, x: torch.Tensor, **kwargs) -> Callable[[], object]:
    def run():
        with torch.no_grad():
            return model(x, **kwargs)

    return run


# ---------------------------------------------------------------------------------------------
# The measurements


# The kernels that do a pass's arithmetic. Both contestants of a comparison must run them on the
# same numbers (same FLOPs, same elements); everything else (dispatch, Python, gathers, copies) is
# what an optimisation can remove.
ARITHMETIC = {
    "aten::mm",
    "aten::bmm",
    "aten::addmm",
    "aten::native_layer_norm",
    "aten::silu",
    "aten::silu_",
    "aten::sigmoid",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
}


def arithmetic_kernel_seconds(run: Callable[[], object]) -> float:
    """Seconds one profiled run spends inside the arithmetic kernels."""
    run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in ARITHMETIC) / 1e6


def with_ceiling(result: dict, fast_s: float, baseline_s: float, run: Callable[[], object]) -> dict:
    """`arithmetic_share`: the arithmetic kernels' time over the fast contestant's measured time;
    `ceiling`: the speedup over the baseline if nothing but those kernels took time. (Profiling
    slows kernels a little too: the share is an upper bound, the ceiling a lower one.)"""
    share = min(1.0, arithmetic_kernel_seconds(run) / fast_s)
    return {**result, "arithmetic_share": share, "ceiling": baseline_s / (fast_s * share)}


def original_style(model: Genesis) -> OriginalStyle:
    """The original code's structure (bench/original_style.py) holding the same weights."""
    return rebuild(*to_original(model))


def agreement(model: Genesis, stand_in: OriginalStyle, x: torch.Tensor) -> dict:
    """How closely the stand-in reproduces the fast path on x: largest output difference, same count."""
    with torch.no_grad():
        ours = model(x)
        logits, count = stand_in(x)
    return dict(max_diff=(ours.logits - logits).abs().max().item(), same_count=ours.neuron_activation_count == count)


def bench_forward(model: Genesis, batch: int, repeats: int, stand_in: OriginalStyle | None = None) -> dict:
    """Fast routing vs the reference path (and the original-style stand-in), eval forward without grad."""
    x = tokens(model.config, batch)
    fast = forward(model, x)
    contestants = {"fast": fast, "reference": forward(model, x, implementation="reference")}
    if stand_in is not None:
        contestants["original_style"] = forward(stand_in, x)
    t = side_by_side(contestants, repeats)
    result = dict(
        batch=batch,
        length=LENGTH,
        fast_ms=1e3 * t["fast"],
        reference_ms=1e3 * t["reference"],
        speedup=t["reference"] / t["fast"],
    )
    if stand_in is not None:
        result.update(
            original_style_ms=1e3 * t["original_style"],
            speedup_vs_original_style=t["original_style"] / t["fast"],
            original_style_agreement=agreement(model, stand_in, x),
        )
    return with_ceiling(result, t["fast"], t["reference"], fast)


def bench_trace(model: Genesis, batch: int, repeats: int, routing: str = "batch") -> dict:
    """Tracing on vs off (fast routing; per-sample routing builds one trace per input)."""
    x = tokens(model.config, batch, seed=0 if routing == "batch" else 1)
    if model.config.n_routing != routing:
        model = twin(model, n_routing=routing)
    t = side_by_side({"off": forward(model, x), "on": forward(model, x, trace=True)}, repeats)
    return dict(
        batch=batch,
        length=LENGTH,
        routing=routing,
        off_ms=1e3 * t["off"],
        on_ms=1e3 * t["on"],
        overhead=t["on"] / t["off"],
    )


def bench_per_sample(
    model: Genesis, inputs: int, repeats: int, stand_in: OriginalStyle | None = None, bound: bool = False
) -> dict:
    """N inputs each routed as if alone, by one per-sample call: their routes (`Genesis.routes`, one
    trace per input, no outputs) and the same call as a full forward (all outputs, no trace), vs a
    loop of batch-of-one fast forwards (and a loop of the original-style stand-in's).

    With `bound`, also the GEMM bound: the speedup over the loop if the routes' matrix products ran
    at the rate of large 2048^2 products (a contestant of its own, so it sees the machine's speed of
    the moment) and nothing else took any time. Every faithful implementation does those products,
    so no implementation on this machine can beat it."""
    x = tokens(model.config, inputs, seed=1)
    per_sample = twin(model, n_routing="sample")

    def loop(m: torch.nn.Module) -> Callable[[], None]:
        def run():
            with torch.no_grad():
                for i in range(inputs):
                    m(x[i : i + 1])

        return run

    def routes():
        return per_sample.routes(x)

    contestants = {"routes": routes, "batched": forward(per_sample, x), "loop": loop(model)}
    if stand_in is not None:
        contestants["original_style_loop"] = loop(stand_in)
    if bound:
        gflop = gemm_flops(routes) / 1e9
        products = max(1, round(gflop / MATMUL_GFLOP))
        contestants["matmul"] = matmuls(products)
    t = side_by_side(contestants, repeats)
    result = dict(
        inputs=inputs,
        length=LENGTH,
        routes_s=t["routes"],
        batched_s=t["batched"],
        loop_s=t["loop"],
        speedup=t["loop"] / t["routes"],
        forward_speedup=t["loop"] / t["batched"],
        per_input_ms=1e3 * t["routes"] / inputs,
    )
    if stand_in is not None:
        result.update(
            original_style_loop_s=t["original_style_loop"],
            speedup_vs_original_style=t["original_style_loop"] / t["routes"],
        )
    if bound:
        peak = products * MATMUL_GFLOP / t["matmul"]
        result.update(routes_gemm_gflop=gflop, matmul_gflops_per_s=peak, gemm_bound=t["loop"] * peak / gflop)
    return with_ceiling(result, t["routes"], t["loop"], routes)


def gpt2_like(config: GenesisConfig, parameters: int):
    """transformers' GPT-2 at the config's width and vocabulary, with the layer count that comes
    closest to `parameters`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    heads = next(h for h in (16, 12, 8, 4, 2, 1) if config.n_dim % h == 0 and config.n_dim // h >= 32)
    fields = dict(
        n_embd=config.n_dim,
        n_head=heads,
        vocab_size=config.n_vocab_size,
        n_positions=LENGTH,
        bos_token_id=0,
        eos_token_id=0,
    )
    one = sum(p.numel() for p in GPT2LMHeadModel(GPT2Config(n_layer=1, **fields)).parameters())
    two = sum(p.numel() for p in GPT2LMHeadModel(GPT2Config(n_layer=2, **fields)).parameters())
    layers = max(1, round((parameters - one) / (two - one)) + 1)
    return GPT2LMHeadModel(GPT2Config(n_layer=layers, **fields)).train(), layers


def bench_training(model: Genesis, batch: int, steps: int) -> dict:
    """Tokens per second of the same loop (AdamW, forward + backward + step) for Genesis and GPT-2.

    Trains `model` itself (so measure it last). Torch's global generator is seeded for the
    measurement: dropout draws change the voltages and so the route lengths, which moved Genesis's
    tokens/s by ±15% between unseeded runs; seeded, every run does the same work.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _bench_training(model, batch, steps)


def _bench_training(model: Genesis, batch: int, steps: int) -> dict:
    genesis_model = model.train()
    n_genesis = sum(p.numel() for p in genesis_model.parameters())
    gpt2, layers = gpt2_like(model.config, n_genesis)
    n_gpt2 = sum(p.numel() for p in gpt2.parameters())
    data = tokens(model.config, batch * (steps + 1), seed=2).view(steps + 1, batch, LENGTH)
    optimizers = {
        "genesis": torch.optim.AdamW(genesis_model.parameters(), lr=1e-3),
        "gpt2": torch.optim.AdamW(gpt2.parameters(), lr=1e-3),
    }
    position = {"genesis": 0, "gpt2": 0}
    fired: list[int] = []

    def step(name: str) -> Callable[[], None]:
        def run():
            x = data[position[name] % len(data)]
            position[name] += 1
            if name == "genesis":
                out = genesis_model(x, labels=x)
                loss = out.loss
                fired.append(out.neuron_activation_count)
            else:
                loss = gpt2(input_ids=x, labels=x).loss
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()

        return run

    t = side_by_side({"genesis": step("genesis"), "gpt2": step("gpt2")}, steps)
    result = dict(
        batch=batch,
        length=LENGTH,
        genesis_parameters=n_genesis,
        gpt2_parameters=n_gpt2,
        gpt2_layers=layers,
        genesis_tokens_per_s=batch * LENGTH / t["genesis"],
        gpt2_tokens_per_s=batch * LENGTH / t["gpt2"],
        ratio=t["gpt2"] / t["genesis"],
        genesis_fired_per_step=statistics.mean(fired),
    )
    return result


def routed_flops(model: Genesis, x: torch.Tensor, implementation: str = "fast") -> int:
    """Matmul and attention FLOPs that one forward really did (the fast path: only the rows still alive)."""
    attention = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu

    def sdpa(query, key, value, *args, **kwargs):
        return sdpa_flop_count(query, key, value)

    counter = FlopCounterMode(display=False, custom_mapping={attention: sdpa})
    with torch.no_grad(), counter:
        model(x, implementation=implementation)
    return counter.get_total_flops()


GEMMS = (torch.ops.aten.mm, torch.ops.aten.bmm, torch.ops.aten.addmm)


def gemm_flops(run: Callable[[], object]) -> int:
    """FLOPs of the matrix products one run does (attention left out), counted on this thread only:
    torch's threads are set to one meanwhile, so per-sample routing opens no lanes the counter cannot see."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            run()
    finally:
        torch.set_num_threads(threads)
    return sum(n for op, n in counter.get_flop_counts()["Global"].items() if op in GEMMS)


MATMUL_SIZE = 2048
MATMUL_GFLOP = 2 * MATMUL_SIZE**3 / 1e9


def matmuls(count: int, size: int = MATMUL_SIZE) -> Callable[[], None]:
    """`count` fp32 products of two size x size matrices: the machine's large-matmul rate."""
    a, b = torch.randn(size, size), torch.randn(size, size)

    def run():
        for _ in range(count):
            a @ b

    return run


def matmul_gflops(size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    t = side_by_side({"mm": matmuls(1, size)}, repeats)["mm"]
    return 2 * size**3 / t / 1e9


def bench_flops(model: Genesis, batch: int, repeats: int, peak: float) -> dict:
    x = tokens(model.config, batch)
    flops = routed_flops(model, x)
    t = side_by_side({"fast": forward(model, x)}, repeats)["fast"]
    return dict(
        batch=batch,
        length=LENGTH,
        gflop=flops / 1e9,
        gflops_per_s=flops / t / 1e9,
        matmul_gflops_per_s=peak,
        fraction_of_matmul=flops / t / 1e9 / peak,
    )


BUDGET = dict(n_dim=768)  # the app config widened to about 25M parameters, near the app's 30M limit


def bench_budget(repeats: int) -> list[dict]:
    """Forward cost near the app's size limit: single inputs as the Run page sends them."""
    model = build(preset("app", **BUDGET))
    rows = []
    for batch, length in ((1, 64), (1, 256), (8, 64)):
        x = tokens(model.config, batch, length)
        t = side_by_side({"fast": forward(model, x)}, repeats)["fast"]
        rows.append(
            dict(
                fields=BUDGET,
                parameters=sum(p.numel() for p in model.parameters()),
                batch=batch,
                length=length,
                fast_ms=1e3 * t,
            )
        )
    return rows


SCALE = [
    ("n_neurons", [8, 16, 32, 64]),
    ("n_neighbors", [2, 4, 8]),
    ("n_dim", [64, 128, 256, 512, 1024]),
    ("length", [16, 64, 256]),
]


def scale_table(repeats: int, grid: list[tuple[str, list[int]]] = SCALE, base: str = "app") -> list[dict]:
    """Forward cost (fast, eval) from a preset, one field at a time; B=1 and B=8. The values of a field
    are measured side by side, so a change of machine speed during the run moves them all alike."""
    rows = []
    for field, values in grid:
        runs, group = {}, []
        for value in values:
            fields = {} if field == "length" else {field: value}
            length = value if field == "length" else LENGTH
            config = preset(base, **fields)
            model = build(config)
            row = dict(field=field, value=value, parameters=sum(p.numel() for p in model.parameters()))
            for batch in (1, 8):
                x = tokens(config, batch, length)
                runs[(value, batch)] = forward(model, x)
                with torch.no_grad():
                    fired = model(x).neuron_activation_count
                row.update({f"b{batch}_fired": fired, f"b{batch}_gflop": routed_flops(model, x) / 1e9})
            group.append(row)
        t = side_by_side(runs, repeats)
        for row in group:
            row.update({f"b{batch}_ms": 1e3 * t[(row["value"], batch)] for batch in (1, 8)})
        rows += group
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [header] + [[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in cells[1:]
    ]
    return "\n".join(lines)


def ceiling(result: dict) -> list:
    return [result["arithmetic_share"], result["ceiling"]] if "ceiling" in result else ["", ""]


ORIGINAL_STYLE_HEADER = ["original-style ms", "vs it x"]


def versus_original_style(result: dict, time_key: str) -> list:
    if time_key not in result:
        return []
    return [result[time_key], result["speedup_vs_original_style"]]


def report(results: dict) -> str:
    out = []
    for name, r in results["configs"].items():
        out.append(f"\n== {name} config: {r['parameters'] / 1e6:.2f}M parameters ==")
        if "forward" in r:
            rows = [
                [f"B={f['batch']},T={f['length']}", f["fast_ms"], f["reference_ms"], f["speedup"]]
                + ceiling(f)
                + versus_original_style(f, "original_style_ms")
                for f in r["forward"]
            ]
            header = ["input", "fast ms", "reference ms", "speedup x", "arithmetic share", "ceiling x"]
            header += ORIGINAL_STYLE_HEADER if "original_style_ms" in r["forward"][0] else []
            out.append(table("forward (eval)", header, rows))
            agreements = [f["original_style_agreement"] for f in r["forward"] if "original_style_agreement" in f]
            if agreements:
                out.append(
                    "original-style stand-in vs fast: largest output difference "
                    f"{max(a['max_diff'] for a in agreements):.2g}, same activation count: "
                    f"{all(a['same_count'] for a in agreements)}"
                )
        if "trace" in r:
            rows = [
                [f"B={f['batch']},T={f['length']}", f.get("routing", "batch"), f["off_ms"], f["on_ms"], f["overhead"]]
                for f in r["trace"]
            ]
            out.append(table("trace=True vs trace=False", ["input", "routing", "off ms", "on ms", "on/off"], rows))
        if "per_sample" in r:
            p = r["per_sample"]
            rows = [
                [f"{p['inputs']} x T={p['length']}", p["routes_s"], p["loop_s"], p["speedup"], p["per_input_ms"]]
                + ceiling(p)
                + ([p["gemm_bound"]] if "gemm_bound" in p else [])
                + [p["batched_s"], p["forward_speedup"]]
                + versus_original_style(p, "original_style_loop_s")
            ]
            header = ["inputs", "routes s", "batch-of-one loop s", "speedup x", "ms per input"]
            header += ["arithmetic share", "ceiling x"] + (["GEMM bound x"] if "gemm_bound" in p else [])
            header += ["forward s (all outputs)", "its speedup x"]
            header += ["original-style loop s", "vs it x"] if "original_style_loop_s" in p else []
            out.append(table("routes of inputs each as if alone", header, rows))
        if "training" in r:
            t = r["training"]
            rows = [
                ["genesis", t["genesis_parameters"], t["genesis_tokens_per_s"], 1.0],
                [f"gpt2 ({t['gpt2_layers']} layers)", t["gpt2_parameters"], t["gpt2_tokens_per_s"], 1 / t["ratio"]],
            ]
            out.append(
                table(
                    f"training, B={t['batch']},T={t['length']}, AdamW, seeded; "
                    f"Genesis fired {t['genesis_fired_per_step']:.1f} neurons per step",
                    ["model", "params", "tokens/s", "relative"],
                    rows,
                )
            )
        if "flops" in r:
            f = r["flops"]
            rows = [
                [
                    f"B={f['batch']},T={f['length']}",
                    f["gflop"],
                    f["gflops_per_s"],
                    f["matmul_gflops_per_s"],
                    f["fraction_of_matmul"],
                ]
            ]
            header = ["input", "GFLOP done", "GFLOP/s", "2048^2 matmul GFLOP/s", "fraction"]
            out.append(table("achieved throughput (fast forward)", header, rows))
    if results.get("scale"):
        rows = [
            [
                s["field"],
                s["value"],
                s["parameters"],
                s["b1_ms"],
                s["b1_fired"],
                s["b8_ms"],
                s["b8_fired"],
                s["b8_gflop"],
            ]
            for s in results["scale"]
        ]
        header = ["field", "value", "params", "B=1 ms", "fired", "B=8 ms", "fired", "B=8 GFLOP"]
        out.append("\n" + table("scale (app config, one field changed; T=64 unless length)", header, rows))
    if results.get("budget"):
        b = results["budget"]
        rows = [[f"B={r['batch']},T={r['length']}", r["fast_ms"]] for r in b]
        title = (
            f"near the app's size limit: app config with {b[0]['fields']}, {b[0]['parameters'] / 1e6:.1f}M parameters"
        )
        out.append(table(title, ["input", "fast ms"], rows))
    return "\n\n".join(out)


TARGETS = [  # (what, issue's target, how to read it from a config's results, higher is better)
    ("forward speedup B=8", 2.0, lambda r: r["forward"][0]["speedup"], True),
    ("forward speedup B=1", 2.0, lambda r: r["forward"][1]["speedup"], True),
    ("per-input routes speedup", 15.0, lambda r: r["per_sample"]["speedup"], True),
    ("per-input forward (all outputs) speedup", 15.0, lambda r: r["per_sample"]["forward_speedup"], True),
    ("trace on/off B=8", 1.10, lambda r: r["trace"][0]["overhead"], False),
    ("trace on/off B=1", 1.10, lambda r: r["trace"][1]["overhead"], False),
    ("trace on/off per-sample routes", 1.10, lambda r: r["trace"][2]["overhead"], False),
    ("training tokens/s vs GPT-2", 1.0, lambda r: r["training"]["ratio"], True),
    # Not the baselines: the same ratios against the original-style stand-in (bench/original_style.py).
    ("(stand-in) forward B=8 vs original-style", 2.0, lambda r: r["forward"][0]["speedup_vs_original_style"], True),
    ("(stand-in) forward B=1 vs original-style", 2.0, lambda r: r["forward"][1]["speedup_vs_original_style"], True),
    ("(stand-in) per-input vs original-style loop", 15.0, lambda r: r["per_sample"]["speedup_vs_original_style"], True),
]


def summary(results: dict) -> str:
    """Each of the issue's targets, per config: the measured ratio and whether it is met."""
    rows = []
    for what, target, read, higher in TARGETS:
        for name, r in results["configs"].items():
            try:
                value = read(r)
            except (KeyError, IndexError):
                continue
            met = value >= target if higher else value <= target
            rows.append([what, name, value, (">= " if higher else "<= ") + f"{target:g}", "yes" if met else "NO"])
    return table("targets", ["measure", "config", "value", "target", "met"], rows) if rows else ""


def machine() -> dict:
    return dict(
        torch=torch.__version__,
        python=platform.python_version(),
        threads=torch.get_num_threads(),
        cpus=os.cpu_count(),
        processor=platform.processor() or platform.machine(),
        load_before=os.getloadavg(),
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run: small, few repeats, app config only")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--configs", default=None, help="comma-separated: app,original")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of: {','.join(PARTS)}")
    parser.add_argument("--repeats", type=int, help="repeats of forward-sized measurements")
    parser.add_argument("--out", default=str(RESULTS), help="JSON results file")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall", help="wall seconds, or CPU seconds")
    parser.add_argument(
        "--default-malloc", action="store_true", help="leave glibc's malloc as it is (the app keeps freed memory)"
    )
    args = parser.parse_args(argv)
    kept = False if args.default_malloc else keep_freed_memory()  # as the app and the CLI run
    global clock
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = QUICK if args.quick else FULL
    repeats = args.repeats or plan.repeats
    parts = set(args.only.split(","))
    configs = (args.configs or ("app" if args.quick else "app,original")).split(",")
    results = dict(machine={**machine(), "clock": args.clock, "malloc_keeps_freed": kept}, quick=args.quick, configs={})
    peak = matmul_gflops() if "flops" in parts else None
    for name in configs:
        model = build(preset(name))
        slow = name == "original"
        reps = max(2, repeats // 3) if slow else repeats
        r = results["configs"][name] = dict(parameters=sum(p.numel() for p in model.parameters()))
        print(f"[{name}] measuring...", file=sys.stderr, flush=True)
        stand_in = original_style(model) if parts & {"forward", "per_sample"} else None
        if "forward" in parts:
            r["forward"] = [bench_forward(model, batch, reps, stand_in) for batch in (8, 1)]
        if "trace" in parts:
            r["trace"] = [bench_trace(model, batch, reps) for batch in (8, 1)]
            r["trace"].append(bench_trace(model, plan.per_sample_inputs[name], reps, routing="sample"))
        if "per_sample" in parts:
            r["per_sample"] = bench_per_sample(
                model, plan.per_sample_inputs[name], plan.loop_repeats, stand_in, bound=True
            )
        if "flops" in parts:
            r["flops"] = bench_flops(model, 8, reps, peak)
        if "training" in parts:
            r["training"] = bench_training(
                model, plan.train_batch[name], max(2, plan.train_steps // (4 if slow else 1))
            )
        del model, stand_in
        gc.collect()
    if "scale" in parts and plan.scale:
        print("[scale] measuring...", file=sys.stderr, flush=True)
        results["scale"] = scale_table(max(3, repeats // 3))
    if "budget" in parts and plan.scale:
        print("[budget] measuring...", file=sys.stderr, flush=True)
        results["budget"] = bench_budget(max(3, repeats // 3))
    results["machine"]["load_after"] = os.getloadavg()
    m = results["machine"]
    print(
        f"torch {m['torch']}, {m['threads']} threads on {m['cpus']} CPUs, {m['clock']} clock; load average "
        f"before {m['load_before'][0]:.1f}, after {m['load_after'][0]:.1f}; medians of side-by-side repeats; "
        f"malloc {'keeps freed memory, as in the app' if m['malloc_keeps_freed'] else 'as the C library set it'}"
    )
    print(report(results))
    print("\n" + summary(results))
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten: {args.out}")
    return results


if __name__ == "__main__":
    main()
