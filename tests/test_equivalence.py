"""The fast routing computes the reference's numbers: outputs, losses, counts, routes and gradients.

Random configurations over every mode (split/sequential, cross-attention, each input and output kind,
no attentive neurons, no neighbors, no dendrites or synapses), thresholds spread over [0.3, 0.7] so
routes stop early and stopped samples matter, batches of 1, 3 and 8 with padding masks. Per-sample
routing is compared with batch-of-one runs of both implementations, and the chunked paths (large
batches) with the unchunked ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
import torch

import genesis.modeling
import genesis.routing
from genesis import Genesis, GenesisConfig
from genesis.trace import STOP_BELOW_THRESHOLD
from tests.conftest import random_labels

ATOL = 1e-5
NEAR_TIE = 1e-5  # a choice or a pass decided by less than this may go either way in float32
EDGE_CASES = [
    {},
    dict(n_attentive_neurons=0),
    dict(n_neighbors=0),
    dict(n_dendritics=0),
    dict(n_synapses=0),
    dict(n_dendritics=0, n_synapses=0),
    dict(n_cross_attention=True),
    {},
]
SEEDS = range(32)


@dataclass
class Case:
    config: GenesisConfig
    inputs: torch.Tensor
    mask: torch.Tensor | None
    y: torch.Tensor | None
    labels: torch.Tensor | None

    def kwargs(self, rows: slice = slice(None)) -> dict:
        pick = lambda t: None if t is None else t[rows]  # noqa: E731
        return dict(attention_mask=pick(self.mask), y=pick(self.y), labels=pick(self.labels))


def random_case(seed: int, **overrides) -> Case:
    """A random valid configuration, inputs for it (B in {1, 3, 8}) and labels for its head."""
    rng = random.Random(seed)
    edge = EDGE_CASES[seed % len(EDGE_CASES)]
    sections, split = rng.randint(1, 3), rng.random() < 0.5
    heads = rng.choice([1, 2])
    inner = heads * rng.choice([4, 8])
    neurons = rng.randint(3, 8)
    attentive = edge.get("n_attentive_neurons", rng.randint(1, min(3, neurons)))
    fields = dict(
        n_dim=inner * sections if split else inner,
        n_input=rng.choice(["reading", "reading", "bridge", "none"]),
        n_section="split" if split else "sequential",
        n_sections=sections,
        n_neurons=neurons,
        n_attentive_neurons=attentive,
        n_attentive_neuron_heads=heads,
        n_cross_attention=edge.get("n_cross_attention", attentive > 0 and rng.random() < 0.3),
        n_dendritics=edge.get("n_dendritics", rng.randint(1, 2)),
        n_synapses=edge.get("n_synapses", rng.randint(1, 2)),
        n_vocab_size=11,
        n_pos_size=12,
        n_neighbors=edge.get("n_neighbors", rng.randint(1, neurons - 1)),
        n_output=rng.choice(["causal_lm", "sequence_classifier", "bridge", "none"]),
        n_outputs=rng.choice([1, 3]),
        n_seed=seed,
    )
    config = GenesisConfig(**{**fields, **overrides})
    g = torch.Generator().manual_seed(seed)
    batch, length = rng.choice([1, 3, 8]), rng.randint(2, 9)
    if config.n_input == "reading":
        inputs = torch.randint(0, config.n_vocab_size, (batch, length), generator=g)
    else:
        inputs = torch.randn(batch, length, config.n_dim, generator=g)
    mask = None
    if rng.random() < 0.5:  # left padding; every row keeps its last position
        pads = torch.randint(0, length, (batch,), generator=g)
        mask = (torch.arange(length)[None, :] >= pads[:, None]).long()
    y = torch.randn(batch, rng.randint(1, 6), config.n_dim, generator=g) if config.n_cross_attention else None
    labels = random_labels(config, batch, length, g)
    return Case(config, inputs, mask, y, labels)


@torch.no_grad()
def build(config: GenesisConfig, seed: int) -> Genesis:
    """Thresholds in [0.3, 0.7] (some below 0.5), norms away from 1, sharper somas: routes branch."""
    model = Genesis(config)
    g = torch.Generator().manual_seed(seed)
    for section in model.sections:
        section.threshold.copy_(0.3 + 0.4 * torch.rand(section.threshold.shape, generator=g))
        section.norm.mul_(0.5 + torch.rand(section.norm.shape, generator=g))
        section.dendrites.norm.mul_(0.5 + torch.rand(section.dendrites.norm.shape, generator=g))
        section.soma.weight.mul_(6)
    return model.eval()


def twin(model: Genesis, **fields) -> Genesis:
    """The same weights under other config fields (routing mode, trainable routing)."""
    other = Genesis(GenesisConfig(**{**model.config.user_dict(), **fields}))
    other.load_state_dict(model.state_dict())
    return other.eval()


def margin(trace) -> float:
    """How close the closest decision of a trace was: best vs runner-up mean, voltage vs threshold."""
    gaps = [float("inf")]
    for per_sample in trace.samples or [trace.sections]:
        for section in per_sample:
            for hop in section.hops:
                means = sorted((c.mean_voltage for c in hop.candidates), reverse=True)
                gaps += [means[0] - means[1]] if len(means) > 1 else []
                chosen = next(c for c in hop.candidates if c.neuron == hop.chosen)
                gaps += [abs(v - hop.threshold) for v in chosen.voltages]
            means = sorted((c.mean_voltage for c in section.indexer), reverse=True)
            gaps += [means[0] - means[1]] if len(means) > 1 else []
    return min(gaps)


def decisions(section) -> list:
    """Everything a section trace decided, without the float voltages."""
    return [
        section.start,
        section.order,
        section.alive,
        section.count,
        section.stop_reason,
        [
            (h.source, [c.neuron for c in h.candidates], h.chosen, h.passed, h.fired, h.stop_reason)
            for h in section.hops
        ],
    ]


def assert_same_voltages(got, expected) -> None:
    for a, b in zip(got.hops, expected.hops):
        for ca, cb in zip(a.candidates, b.candidates):
            assert ca.mean_voltage == pytest.approx(cb.mean_voltage, abs=ATOL)
            assert ca.voltages == pytest.approx(cb.voltages, abs=ATOL)
        assert a.threshold == pytest.approx(b.threshold, abs=1e-7)


def assert_same_outputs(got, expected) -> None:
    torch.testing.assert_close(got.outputs, expected.outputs, atol=ATOL, rtol=1e-4)
    assert (got.loss is None) == (expected.loss is None)
    if got.loss is not None:
        assert float(got.loss.detach()) == pytest.approx(float(expected.loss.detach()), abs=ATOL, rel=1e-4)


def run(model: Genesis, case: Case, rows: slice = slice(None), **kwargs):
    with torch.no_grad():
        return model(case.inputs[rows], **case.kwargs(rows), **kwargs)


def decisive(trace) -> None:
    if margin(trace) < NEAR_TIE:
        pytest.skip("a decision within float32 noise: either route is right")


# ---------------------------------------------------------------------------------------------
# Batch routing


@pytest.mark.parametrize("seed", SEEDS)
def test_fast_equals_reference(seed):
    case = random_case(seed)
    model = build(case.config, seed)
    reference = run(model, case, trace=True, implementation="reference")
    decisive(reference.trace)
    fast = run(model, case, trace=True)
    assert_same_outputs(fast, reference)
    assert fast.neuron_activation_count == reference.neuron_activation_count
    for got, expected in zip(fast.trace.sections, reference.trace.sections, strict=True):
        assert decisions(got) == decisions(expected)
        assert_same_voltages(got, expected)
    untraced = run(model, case)
    assert torch.equal(untraced.outputs, fast.outputs)  # tracing changes no arithmetic
    assert untraced.neuron_activation_count == fast.neuron_activation_count


def test_most_random_cases_are_decisive():
    """The skips above are rare: the comparison really runs on the random configurations."""
    close = 0
    for seed in SEEDS:
        case = random_case(seed)
        close += margin(run(build(case.config, seed), case, trace=True, implementation="reference").trace) < NEAR_TIE
    assert close <= len(SEEDS) // 10


def test_the_random_cases_cover_what_matters():
    """Stopped samples, routes that stop early and every edge case appear among the cases."""
    stopped_rows = early_stops = 0
    for seed in SEEDS:
        case = random_case(seed)
        trace = run(build(case.config, seed), case, trace=True).trace
        for section in trace.sections:
            stopped_rows += any(not all(alive) for alive in section.alive)
            early_stops += section.stop_reason == STOP_BELOW_THRESHOLD
    assert stopped_rows >= 5 and early_stops >= 10
    configs = [random_case(seed).config for seed in SEEDS]
    for field, value in [
        ("n_attentive_neurons", 0),
        ("n_neighbors", 0),
        ("n_dendritics", 0),
        ("n_synapses", 0),
        ("n_cross_attention", True),
        ("n_section", "sequential"),
        ("n_section", "split"),
    ]:
        assert any(getattr(c, field) == value for c in configs), field
    for mode in ("reading", "bridge", "none"):
        assert any(c.n_input == mode for c in configs), mode
    for mode in ("causal_lm", "sequence_classifier", "bridge", "none"):
        assert any(c.n_output == mode for c in configs), mode
    assert {random_case(seed).inputs.shape[0] for seed in SEEDS} == {1, 3, 8}


# ---------------------------------------------------------------------------------------------
# Per-sample routing: each sample as if alone


@pytest.mark.parametrize("seed", SEEDS[::2])
def test_per_sample_equals_batch_of_one(seed):
    case = random_case(seed, n_routing="sample")
    model = build(case.config, seed)
    together = run(model, case, trace=True)
    decisive(together.trace)
    alone_model = twin(model, n_routing="batch")
    fired = set()
    for b in range(case.inputs.shape[0]):
        rows = slice(b, b + 1)
        for implementation in ("fast", "reference"):
            alone = run(alone_model, case, rows, trace=True, implementation=implementation)
            torch.testing.assert_close(together.outputs[rows], alone.outputs, atol=ATOL, rtol=1e-4)
            for got, expected in zip(together.trace.samples[b], alone.trace.sections, strict=True):
                assert decisions(got) == decisions(expected)
                assert_same_voltages(got, expected)
        fired |= {(s.section, n) for s in together.trace.samples[b] for n in s.order}
    assert together.neuron_activation_count == len(fired)  # neurons that fired for any sample


def test_sample_routing_of_one_sample_is_batch_routing():
    case = random_case(3, n_routing="sample")
    model = build(case.config, 3)
    one = run(model, case, slice(0, 1), trace=True)
    batch = run(twin(model, n_routing="batch"), case, slice(0, 1), trace=True)
    assert torch.equal(one.outputs, batch.outputs) or torch.allclose(one.outputs, batch.outputs, atol=ATOL)
    assert [decisions(s) for s in one.trace.samples[0]] == [decisions(s) for s in batch.trace.sections]


# ---------------------------------------------------------------------------------------------
# Large batches go in slices and chunks: the same numbers


@pytest.mark.parametrize("routing", ["batch", "sample"])
def test_chunked_large_batches_give_the_same_numbers(monkeypatch, routing):
    config = GenesisConfig(
        n_dim=16,
        n_sections=2,
        n_neurons=6,
        n_attentive_neurons=2,
        n_attentive_neuron_heads=2,
        n_vocab_size=11,
        n_pos_size=12,
        n_neighbors=3,
        n_cross_attention=True,
        n_routing=routing,
    )
    model = build(config, 5)
    g = torch.Generator().manual_seed(5)
    inputs = torch.randint(0, 11, (13, 7), generator=g)
    mask = (torch.arange(7)[None, :] >= torch.randint(0, 7, (13,), generator=g)[:, None]).long()
    y = torch.randn(13, 4, 16, generator=g)
    with torch.no_grad():
        whole = model(inputs, attention_mask=mask, y=y, trace=True)
        monkeypatch.setattr(genesis.modeling, "CACHE_FLOATS", 1)  # one sample per slice
        monkeypatch.setattr(genesis.routing, "CHUNK_FLOATS", 3 * 7 * 8)  # three samples per chunk
        chunked = model(inputs, attention_mask=mask, y=y, trace=True)
    torch.testing.assert_close(chunked.outputs, whole.outputs, atol=ATOL, rtol=1e-4)
    assert chunked.neuron_activation_count == whole.neuron_activation_count
    assert chunked.trace.sample_routes() == whole.trace.sample_routes()
    if routing == "sample":
        assert [[decisions(s) for s in per] for per in chunked.trace.samples] == [
            [decisions(s) for s in per] for per in whole.trace.samples
        ]


@pytest.fixture
def intra_op_threads():
    """Set torch's intra-op threads for one test (per-sample lanes follow them), restored after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_per_sample_lanes_give_what_one_thread_gives(monkeypatch, intra_op_threads):
    case = random_case(2, n_routing="sample", n_output="bridge")
    model = build(case.config, 2)
    inputs = torch.cat([case.inputs] * 5)  # more samples than chunks
    monkeypatch.setattr(genesis.routing, "CHUNK_FLOATS", 2 * inputs.shape[1] * case.config.inner_dim)
    with torch.no_grad():
        intra_op_threads(1)  # one lane
        alone = model(inputs, trace=True)
        intra_op_threads(2)  # two lanes, chunks shared between them
        shared = model(inputs, trace=True)
    torch.testing.assert_close(shared.outputs, alone.outputs, atol=ATOL, rtol=1e-4)
    assert shared.neuron_activation_count == alone.neuron_activation_count
    assert [[decisions(s) for s in per] for per in shared.trace.samples] == [
        [decisions(s) for s in per] for per in alone.trace.samples
    ]
    assert [s.order for s in shared.trace.sections] == [s.order for s in alone.trace.sections]


def test_per_sample_training_stays_reproducible_with_threads(monkeypatch, intra_op_threads):
    """Dropout draws from the global generator: lanes would make the masks depend on timing."""
    case = random_case(2, n_routing="sample", n_output="bridge")
    model = build(case.config, 2).train()
    inputs = torch.cat([case.inputs] * 5)
    monkeypatch.setattr(genesis.routing, "CHUNK_FLOATS", 2 * inputs.shape[1] * case.config.inner_dim)
    intra_op_threads(2)
    runs = []
    for _ in range(3):
        torch.manual_seed(0)
        runs.append(model(inputs).outputs.detach())
    assert all(torch.equal(run, runs[0]) for run in runs)


# ---------------------------------------------------------------------------------------------
# Gradients


def loss_of(out) -> torch.Tensor:
    """The model's loss, or a fixed weighting of its outputs when it has none."""
    if out.loss is not None:
        return out.loss
    weights = torch.linspace(-1, 1, out.outputs.numel()).view_as(out.outputs)
    return (out.outputs * weights).sum()


def gradients(model: Genesis, case: Case, rows: slice = slice(None), **kwargs) -> dict[str, torch.Tensor]:
    model.zero_grad()
    out = model(case.inputs[rows], **case.kwargs(rows), **kwargs)
    loss_of(out).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_close_gradients(got: dict, expected: dict) -> None:
    """Equal up to float noise; a parameter missing on one side must have a zero gradient on the other."""
    for name in got.keys() | expected.keys():
        a, b = got.get(name), expected.get(name)
        a, b = (torch.zeros_like(b) if a is None else a), (torch.zeros_like(a) if b is None else b)
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("seed", SEEDS[::3])
@pytest.mark.parametrize("trainable", [False, True])
def test_gradients_of_fast_and_reference_agree(seed, trainable):
    case = random_case(seed)
    model = twin(build(case.config, seed), n_trainable_routing=trainable)
    decisive(run(model, case, trace=True, implementation="reference").trace)
    fast = gradients(model, case)
    reference = gradients(model, case, implementation="reference")
    assert_close_gradients(fast, reference)
    somas = [name for name in fast if "soma" in name and fast[name].any()]
    assert bool(somas) == trainable  # routing learns only when asked to


@pytest.mark.parametrize("seed", SEEDS[::3])
def test_trainable_routing_changes_no_forward_value(seed):
    case = random_case(seed)
    model = build(case.config, seed)
    trainable = twin(model, n_trainable_routing=True)
    plain = run(model, case, trace=True)
    with torch.enable_grad():  # the straight-through factors exist only with grad on
        out = trainable(case.inputs, **case.kwargs(), trace=True)
    assert_same_outputs(out, plain)
    assert out.trace.sample_routes() == plain.trace.sample_routes()


@pytest.mark.parametrize("seed", [1, 6, 10])
@pytest.mark.parametrize("trainable", [False, True])
def test_per_sample_gradients_are_the_sum_of_batch_of_one_gradients(seed, trainable):
    case = random_case(seed, n_routing="sample", n_output="bridge", n_trainable_routing=trainable)
    model = build(case.config, seed)
    decisive(run(model, case, trace=True).trace)
    together = gradients(model, case)
    alone_model = twin(model, n_routing="batch")
    total: dict[str, torch.Tensor] = {}
    for b in range(case.inputs.shape[0]):
        one = gradients(alone_model, case, slice(b, b + 1), implementation="reference")
        for name, grad in one.items():  # the bridge loss is a mean over samples: weight each by 1/B
            total[name] = total.get(name, 0) + grad / case.inputs.shape[0]
    assert_close_gradients(together, total)


# ---------------------------------------------------------------------------------------------
# Kept candidate weights (no-grad passes keep gathered weights until a weight changes)


@pytest.mark.parametrize(
    "change", ["in_place", "optimizer_step", "load_state_dict", "assign", "data_assign", "data_in_place"]
)
def test_kept_weights_follow_every_weight_change(change):
    case = random_case(8, n_output="bridge", n_trainable_routing=True)  # the optimizer step reaches dendrites
    model = build(case.config, 8)
    before = run(model, case, trace=True)  # fills the kept weights
    other = build(case.config, 9)
    other.reset_parameters(seed=9)  # other weights everywhere
    if change == "in_place":
        with torch.no_grad():
            for section in model.sections:
                for part in (section.dendrites, section.soma, section.axon, section.synapses):
                    part.weight.mul_(-1)
    elif change == "optimizer_step":
        model.train()
        loss_of(model(case.inputs, **case.kwargs())).backward()
        torch.optim.SGD(model.parameters(), lr=5.0).step()
        model.eval()
    elif change == "load_state_dict":
        model.load_state_dict(other.state_dict())
    elif change == "assign":  # new tensors in place of the old ones
        model.load_state_dict(other.state_dict(), assign=True)
    elif change == "data_assign":  # new storage: seen by its address
        for section in model.sections:
            for part in (section.dendrites, section.soma):
                part.weight.data = -part.weight.data
    else:  # .data writes bump no version counter: the documented way out
        for section in model.sections:
            for part in (section.dendrites, section.soma, section.axon, section.synapses):
                part.weight.data.mul_(-1)
        model.drop_kept_weights()
    after = run(model, case, trace=True)
    expected = run(model, case, trace=True, implementation="reference")
    decisive(expected.trace)
    assert_same_outputs(after, expected)
    assert [decisions(s) for s in after.trace.sections] == [decisions(s) for s in expected.trace.sections]
    for got, want in zip(after.trace.sections, expected.trace.sections):
        assert_same_voltages(got, want)
        assert [c.voltages for c in got.indexer] == [pytest.approx(c.voltages, abs=ATOL) for c in want.indexer]
    assert not torch.allclose(after.outputs, before.outputs, atol=1e-4)  # the change mattered
