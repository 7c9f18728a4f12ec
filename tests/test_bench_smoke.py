"""The performance benchmark runs end to end at minimal sizes (it measures; it asserts no times)."""

from __future__ import annotations

import json

import torch

from bench import bench_perf
from genesis import GenesisConfig, preset


def test_benchmark_parts_run_on_a_tiny_model():
    model = bench_perf.build(preset("tiny"))
    stand_in = bench_perf.original_style(model)
    forward = bench_perf.bench_forward(model, batch=2, repeats=1, stand_in=stand_in)
    assert forward["fast_ms"] > 0 and forward["reference_ms"] > 0 and forward["speedup"] > 0
    assert forward["original_style_ms"] > 0 and forward["original_style_agreement"]["same_count"]
    assert forward["original_style_agreement"]["max_diff"] < 1e-4
    trace = bench_perf.bench_trace(model, batch=1, repeats=1)
    assert trace["on_ms"] > 0 and trace["off_ms"] > 0
    sample_trace = bench_perf.bench_trace(model, batch=3, repeats=1, routing="sample")
    assert sample_trace["routing"] == "sample" and sample_trace["on_ms"] > 0
    per_sample = bench_perf.bench_per_sample(model, inputs=3, repeats=1, stand_in=stand_in, bound=True)
    assert per_sample["inputs"] == 3 and per_sample["loop_s"] > 0 and per_sample["original_style_loop_s"] > 0
    assert per_sample["routes_s"] > 0 and per_sample["batched_s"] > 0
    assert per_sample["routes_gemm_gflop"] > 0 and per_sample["gemm_bound"] > per_sample["speedup"]
    for result in (forward, per_sample):  # the profiler found the arithmetic kernels
        assert 0 < result["arithmetic_share"] <= 1 and result["ceiling"] > 0
    flops = bench_perf.bench_flops(model, batch=2, repeats=1, peak=bench_perf.matmul_gflops(size=64, repeats=1))
    assert flops["gflop"] > 0 and flops["gflops_per_s"] > 0
    training = bench_perf.bench_training(model, batch=2, steps=2)
    # "equal parameters": the GPT-2 layer count that comes closest
    assert training["gpt2_layers"] >= 1 and training["genesis_tokens_per_s"] > 0
    assert abs(training["gpt2_parameters"] - training["genesis_parameters"]) < training["genesis_parameters"]
    scale = bench_perf.scale_table(1, grid=[("n_neighbors", [1, 2]), ("length", [8])], base="tiny")
    assert [(row["field"], row["value"]) for row in scale] == [("n_neighbors", 1), ("n_neighbors", 2), ("length", 8)]
    results = dict(
        configs={
            "tiny": dict(
                parameters=1000,
                forward=[forward],
                trace=[trace, sample_trace],
                per_sample=per_sample,
                flops=flops,
                training=training,
            )
        },
        scale=scale,
    )
    text = bench_perf.report(results)
    for heading in ("forward (eval)", "original-style", "trace=True", "as if alone", "training", "GFLOP/s", "scale"):
        assert heading in text


def test_routed_flops_count_only_what_ran(make_model):
    """Fewer FLOPs than the reference path once samples stop (it computes only the live rows)."""
    model = make_model()  # perturbed so that routes branch
    x = bench_perf.tokens(model.config, 8, length=16)
    with torch.no_grad():
        alive = [sum(a) for s in model(x, trace=True).trace.sections for a in s.alive]
    assert min(alive) < 8  # some samples did stop
    fast = bench_perf.routed_flops(model, x)
    reference = bench_perf.routed_flops(model, x, implementation="reference")
    assert 0 < fast < reference


def test_gemm_flops_of_per_sample_routes_are_those_of_each_input_alone():
    """Counted on one thread: lanes (other threads, which the counter cannot see) would hide work."""
    model = bench_perf.build(GenesisConfig(**{**preset("app").user_dict(), "n_routing": "sample"}))
    x = bench_perf.tokens(model.config, 64, seed=1)  # 64 x 64 x 64 floats: enough to open lanes
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        together = bench_perf.gemm_flops(lambda: model.routes(x))
    finally:
        torch.set_num_threads(threads)
    alone = sum(bench_perf.gemm_flops(lambda i=i: model.routes(x[i : i + 1])) for i in range(len(x)))
    assert together == alone > 0


def test_the_command_writes_its_results(tmp_path):
    out = tmp_path / "results.json"
    # --default-malloc: this test process keeps glibc's own malloc settings
    bench_perf.main(["--quick", "--only", "forward,trace", "--repeats", "1", "--out", str(out), "--default-malloc"])
    saved = json.loads(out.read_text())
    app = saved["configs"]["app"]
    assert [f["batch"] for f in app["forward"]] == [8, 1]
    assert [f["routing"] for f in app["trace"]] == ["batch", "batch", "sample"]
    assert saved["machine"]["threads"] >= 1 and saved["machine"]["malloc_keeps_freed"] is False
