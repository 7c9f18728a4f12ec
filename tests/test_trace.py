"""The route trace: plain data, faithful to what the routing did, and free (tracing changes nothing)."""

from __future__ import annotations

import gc
import json
import threading

import pytest
import torch

from genesis import RoutingTrace
from genesis.trace import STOP_ALL_FIRED, STOP_BELOW_THRESHOLD, STOP_NO_NEIGHBORS, collector_paused

STOPS = {STOP_ALL_FIRED, STOP_BELOW_THRESHOLD, STOP_NO_NEIGHBORS}
PLAIN = (int, float, bool, str, type(None))


def run(model, inputs, implementation="fast", **kwargs):
    with torch.no_grad():
        return model(inputs, trace=True, implementation=implementation, **kwargs)


def assert_plain(value, where="trace"):
    """Only JSON's own types all the way down: no tensors, no numpy scalars."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), where
            assert_plain(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_plain(item, f"{where}[{i}]")
    else:
        assert type(value) in PLAIN, f"{where} is a {type(value).__name__}"


@pytest.fixture(scope="module")
def batch_run(lm_model):
    inputs = torch.randint(0, 256, (6, 10), generator=torch.Generator().manual_seed(11))
    return lm_model, inputs, run(lm_model, inputs)


# -- plain data ------------------------------------------------------------------------------


@pytest.mark.parametrize("routing", ["batch", "sample"])
def test_to_dict_is_json_and_round_trips(make_model, tokens, routing):
    trace = run(make_model(n_routing=routing), tokens(4, 8)).trace
    data = trace.to_dict()
    assert_plain(data)
    text = json.dumps(data)
    back = RoutingTrace.from_dict(json.loads(text))
    assert back == trace
    assert back.sample_routes() == trace.sample_routes()
    assert back.to_dict() == data


def test_trace_objects_hold_no_tensors(batch_run):
    _, _, out = batch_run

    def walk(obj):
        assert not isinstance(obj, torch.Tensor)
        if hasattr(obj, "__dataclass_fields__"):
            for name in obj.__dataclass_fields__:
                walk(getattr(obj, name))
        elif isinstance(obj, list):
            for item in obj:
                walk(item)
        else:
            assert type(obj) in PLAIN, type(obj)

    walk(out.trace)


def test_route_frame_is_tidy(batch_run):
    _, inputs, out = batch_run
    frame = out.trace.to_frame("route")
    assert list(frame.columns) == ["sample", "section", "step", "neuron"]
    routes = out.trace.sample_routes()
    assert len(frame) == sum(len(r) for per_sample in routes for r in per_sample)
    for (sample, section), group in frame.groupby(["sample", "section"]):
        assert group.sort_values("step")["neuron"].tolist() == routes[sample][section]
        assert group["step"].tolist() == list(range(len(group)))
    assert set(frame["sample"]) == set(range(inputs.shape[0]))
    assert out.trace.to_frame().equals(frame)


def test_candidate_frame_matches_the_hops(batch_run):
    _, inputs, out = batch_run
    frame = out.trace.to_frame("candidates")
    assert list(frame.columns) == [
        "sample",
        "section",
        "hop",
        "source",
        "candidate",
        "voltage",
        "mean_voltage",
        "chosen",
        "threshold",
        "passed",
    ]
    for row in frame.itertuples():
        section = out.trace.sections[row.section]
        assert row.hop >= 1  # hop 1 is the first, as on Home and Run and in the route graphs
        hop = section.hops[row.hop - 1]
        candidate = next(c for c in hop.candidates if c.neuron == row.candidate)
        assert row.source == hop.source
        assert row.voltage == candidate.voltages[row.sample]
        assert row.chosen == (row.candidate == hop.chosen)
        assert row.passed == (row.chosen and hop.passed[row.sample])
        # a sample appears at a hop only while it is alive
        assert section.alive[row.hop - 1][row.sample]
    chosen = frame[frame["chosen"]]
    assert (chosen["passed"] == (chosen["voltage"] > chosen["threshold"])).all()
    with pytest.raises(ValueError, match="kind"):
        out.trace.to_frame("edges")


def test_sample_frames_in_per_sample_mode(make_model, tokens):
    out = run(make_model(n_routing="sample"), tokens(4, 8, seed=2))
    routes = out.trace.sample_routes()
    frame = out.trace.to_frame("route")
    for (sample, section), group in frame.groupby(["sample", "section"]):
        assert group["neuron"].tolist() == routes[sample][section]
    candidates = out.trace.to_frame("candidates")
    for row in candidates[candidates["chosen"]].itertuples():
        assert row.passed == (row.voltage > row.threshold)
        assert row.mean_voltage == row.voltage  # alone, the mean is its own voltage


# -- what the trace says is what happened ----------------------------------------------------------


def check_section(trace, section, batch: int, mode: str = "batch"):
    """Every invariant one section's trace must keep (batch routing: one shared route)."""
    attentive = section.n_attentive
    thresholds = section.threshold.detach().tolist()
    # The indexer: attentive neurons (all, when none), the highest batch mean wins (first on a tie).
    assert [c.neuron for c in trace.indexer] == list(range(attentive or section.n_neurons))
    means = [c.mean_voltage for c in trace.indexer]
    assert trace.start == trace.indexer[means.index(max(means))].neuron
    for c in trace.indexer:
        assert len(c.voltages) == batch
        assert c.mean_voltage == pytest.approx(sum(c.voltages) / batch, abs=1e-6)
    assert trace.order[0] == trace.start
    assert trace.alive[0] == [True] * batch
    assert trace.count == len(trace.order) == len(trace.alive) == len(set(trace.order))
    assert trace.stop_reason in STOPS
    fired = [trace.start]
    for k, hop in enumerate(trace.hops):
        assert hop.source == trace.order[k]
        expected = [n for n in section.neighbors[hop.source] if n >= attentive and n not in fired]
        assert [c.neuron for c in hop.candidates] == expected
        means = [c.mean_voltage for c in hop.candidates]
        assert hop.chosen == hop.candidates[means.index(max(means))].neuron
        chosen = next(c for c in hop.candidates if c.neuron == hop.chosen)
        assert hop.threshold == pytest.approx(thresholds[hop.chosen])
        alive = trace.alive[k]
        for c in hop.candidates:
            # stopped samples are zero rows: every part is bias-free, so their voltage is sigmoid(0)
            assert c.mean_voltage == pytest.approx(sum(c.voltages) / batch, abs=1e-6)
            assert all(v == pytest.approx(0.5, abs=1e-6) for v, a in zip(c.voltages, alive) if not a)
        assert hop.passed == [a and v > hop.threshold for v, a in zip(chosen.voltages, alive)]
        assert hop.fired == any(hop.passed)
        if hop.fired:
            assert trace.order[k + 1] == hop.chosen
            assert trace.alive[k + 1] == hop.passed
            fired.append(hop.chosen)
        else:
            assert k == len(trace.hops) - 1
    assert fired == trace.order
    if trace.hops:
        assert trace.hops[-1].stop_reason == trace.stop_reason
        assert all(h.stop_reason is None for h in trace.hops[:-1])
    last_fired = not trace.hops or trace.hops[-1].fired
    if trace.stop_reason == STOP_BELOW_THRESHOLD:
        assert not last_fired
    else:
        assert last_fired
        plain = [n for n in section.neighbors[trace.order[-1]] if n >= attentive]
        assert (trace.stop_reason == STOP_NO_NEIGHBORS) == (not plain)
        assert set(plain) <= set(trace.order)


@pytest.mark.parametrize("implementation", ["fast", "reference"])
@pytest.mark.parametrize(
    "overrides",
    [
        dict(),
        dict(n_section="sequential", n_output="sequence_classifier", n_outputs=2, n_seed=3),
        dict(n_attentive_neurons=0, n_seed=5),
        dict(n_neurons=5, n_neighbors=1, n_seed=8),
    ],
    ids=["lm-split", "classifier-sequential", "no-attentive", "sparse-wiring"],
)
def test_every_hop_is_what_the_routing_did(make_model, tokens, implementation, overrides):
    model = make_model(**overrides)
    for seed in range(3):
        inputs = tokens(6, 9, seed=seed)
        out = run(model, inputs, implementation)
        assert len(out.trace.sections) == len(model.sections)
        for trace, section in zip(out.trace.sections, model.sections):
            check_section(trace, section, inputs.shape[0])
        assert out.trace.count == out.neuron_activation_count


def test_the_routes_branch_so_the_invariants_are_exercised(lm_model, tokens):
    """The fixtures must produce partly-passing hops and stops of each kind, or the checks above prove little."""
    partial, reasons, lengths = False, set(), set()
    for seed in range(6):
        for trace in run(lm_model, tokens(6, 9, seed=seed)).trace.sections:
            partial |= any(any(h.passed) and not all(h.passed) for h in trace.hops)
            reasons.add(trace.stop_reason)
            lengths.add(len(trace.order))
    assert partial
    assert STOP_BELOW_THRESHOLD in reasons
    assert len(lengths) > 1


def test_sample_routes_are_order_filtered_by_alive(batch_run):
    _, inputs, out = batch_run
    routes = out.trace.sample_routes()
    assert len(routes) == inputs.shape[0]
    for b, per_section in enumerate(routes):
        for i, route in enumerate(per_section):
            section = out.trace.sections[i]
            assert route == [n for n, alive in zip(section.order, section.alive) if alive[b]]
            assert route[0] == section.start


def test_stopped_sample_stays_stopped_below_half_threshold(make_model, tokens):
    """SPEC flaw 7: with thresholds under 0.5 a zero row would 'pass'; here it stays stopped."""
    model = make_model(n_seed=2)
    with torch.no_grad():
        for section in model.sections:
            section.threshold.uniform_(0.4, 0.6, generator=torch.Generator().manual_seed(0))
    revived = False
    for seed in range(4):
        inputs = tokens(6, 9, seed=seed)
        fast, reference = run(model, inputs), run(model, inputs, "reference")
        torch.testing.assert_close(fast.outputs, reference.outputs, atol=1e-5, rtol=0)
        for trace, section in zip(fast.trace.sections, model.sections):
            check_section(trace, section, inputs.shape[0])
            for earlier, later in zip(trace.alive, trace.alive[1:]):
                assert all(e or not la for e, la in zip(earlier, later))
            revived |= any(
                h.threshold < 0.5 and not all(a) for h, a in zip(trace.hops, trace.alive)
            )  # a zero row would have passed
        assert [t.alive for t in fast.trace.sections] == [t.alive for t in reference.trace.sections]
    assert revived, "no hop had a stopped row facing a threshold under 0.5"


@pytest.mark.parametrize("routing,implementation", [("batch", "fast"), ("batch", "reference"), ("sample", "fast")])
def test_tracing_changes_no_output(make_model, tokens, routing, implementation):
    model = make_model(n_routing=routing, n_output="sequence_classifier", n_outputs=1)
    inputs, labels = tokens(5, 7), torch.tensor([0, 1, 1, 0, 1])
    with torch.no_grad():
        plain = model(inputs, labels=labels, implementation=implementation)
        traced = model(inputs, labels=labels, trace=True, implementation=implementation)
    assert plain.trace is None and traced.trace is not None
    assert torch.equal(plain.outputs, traced.outputs)
    assert torch.equal(plain.loss, traced.loss)
    assert plain.neuron_activation_count == traced.neuron_activation_count


def test_tracing_changes_no_gradient(make_model, tokens):
    model = make_model(n_trainable_routing=True).train()
    inputs = tokens(4, 6)
    grads = []
    for trace in (False, True):
        torch.manual_seed(0)  # same dropout masks
        model.zero_grad()
        model(inputs, labels=inputs, trace=trace).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_fast_trace_equals_reference_trace(make_model, tokens):
    model = make_model(n_seed=6)
    for seed in range(3):
        inputs = tokens(7, 8, seed=seed)
        fast, reference = run(model, inputs).trace, run(model, inputs, "reference").trace
        for f, r in zip(fast.sections, reference.sections):
            assert (f.start, f.order, f.alive, f.count, f.stop_reason) == (
                r.start,
                r.order,
                r.alive,
                r.count,
                r.stop_reason,
            )
            assert [(h.source, h.chosen, h.passed, h.fired, h.stop_reason) for h in f.hops] == [
                (h.source, h.chosen, h.passed, h.fired, h.stop_reason) for h in r.hops
            ]
            for fh, rh in zip(f.hops, r.hops):
                for fc, rc in zip(fh.candidates, rh.candidates):
                    assert fc.neuron == rc.neuron
                    assert fc.voltages == pytest.approx(rc.voltages, abs=1e-5)


def test_per_sample_trace_shape(make_model, tokens):
    model = make_model(n_routing="sample")
    inputs = tokens(4, 8, seed=1)
    trace = run(model, inputs).trace
    assert trace.mode == "sample" and trace.batch_size == 4
    assert len(trace.samples) == 4
    for b, per_sample in enumerate(trace.samples):
        assert [s.section for s in per_sample] == list(range(len(model.sections)))
        for s, section in zip(per_sample, model.sections):
            assert s.sample == b
            check_section(s, section, 1)
    # the aggregate view: every neuron that fired for some sample, each once
    for i, aggregate in enumerate(trace.sections):
        fired = {n for per_sample in trace.samples for n in per_sample[i].order}
        assert sorted(aggregate.order) == sorted(fired)
        for neuron, alive in zip(aggregate.order, aggregate.alive):
            assert alive == [neuron in per_sample[i].order for per_sample in trace.samples]


@pytest.mark.parametrize("enabled", [True, False])
def test_per_sample_tracing_leaves_the_collector_as_it_was(make_model, tokens, enabled):
    model = make_model(n_routing="sample")
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with torch.no_grad():
            out = model(tokens(6, 8), trace=True)
        assert len(out.trace.samples) == 6
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_collector_pause_is_shared_by_threads():
    """The collector stays paused while any thread builds a trace, and resumes after the last."""
    assert gc.isenabled()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with collector_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with collector_paused():
            second_in.set()
            first_out.wait(5)
            seen["after first left"] = gc.isenabled()
        seen["after both left"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"after first left": False, "after both left": True}


@pytest.mark.parametrize("routing,implementation", [("batch", "fast"), ("batch", "reference"), ("sample", "fast")])
@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(n_section="sequential", n_sections=3, n_seed=3), dict(n_attentive_neurons=0, n_seed=5)],
    ids=["split", "sequential", "no-attentive"],
)
def test_routes_are_the_traced_forward_s(make_model, tokens, routing, implementation, overrides):
    """Genesis.routes skips the outputs, not a single decision: the same trace, to the last voltage."""
    model = make_model(n_routing=routing, **overrides)
    for seed in range(3):
        inputs = tokens(6, 9, seed=seed)
        assert model.routes(inputs, implementation=implementation) == run(model, inputs, implementation).trace


def test_routes_take_inputs_as_forward_does(lm_model, tokens):
    ids = tokens(3, 8)
    assert lm_model.routes(input_ids=ids) == lm_model.routes(ids)
    with pytest.raises(ValueError, match="no inputs"):
        lm_model.routes()


def test_routes_run_neither_the_combiner_nor_the_head(make_model, tokens):
    model = make_model(n_routing="sample")
    calls = []
    hooks = [
        m.register_forward_hook(lambda *_, name=name: calls.append(name))
        for name, m in [("combiner", model.combiner), ("head", model.output)]
    ]
    try:
        trace = model.routes(tokens(4, 8))
        assert calls == [] and len(trace.samples) == 4
        run(model, tokens(4, 8))
        assert calls == ["combiner", "head"]
    finally:
        for hook in hooks:
            hook.remove()


def test_a_sample_outside_the_batch_is_refused(make_model, tokens):
    section = make_model()(tokens(2, 6), trace=True).trace.sections[0]
    for sample in (2, -1):  # -1 used to read the last sample
        for ask in (section.route_of, section.hops_of, section.stop_reason_of):
            with pytest.raises(ValueError, match=rf"sample must be in \[0, 1\], got {sample}"):
                ask(sample)
