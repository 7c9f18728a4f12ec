"""The documented options beyond the original: per-sample routing and trainable routing."""

from __future__ import annotations

import pytest
import torch

from genesis import Genesis

ROUTING_PARTS = ("dendrites.weight", "dendrites.norm", "soma.weight", "threshold")


def twin(model: Genesis, **overrides) -> Genesis:
    """The same weights under a config with some fields changed."""
    other = Genesis(type(model.config)(**{**model.config.user_dict(), **overrides}))
    other.load_state_dict(model.state_dict())
    return other.eval()


def row(value, b: int):
    return None if value is None else value[b : b + 1]


# -- per-sample routing ----------------------------------------------------------------------------

SAMPLE_CASES = {
    "lm-split": dict(),
    "classifier-sequential": dict(n_output="sequence_classifier", n_outputs=3, n_section="sequential", n_seed=2),
    "cross-attention": dict(n_input="bridge", n_output="bridge", n_cross_attention=True, n_seed=3),
    "no-attentive": dict(n_attentive_neurons=0, n_seed=4),
}


def sample_inputs(model, tokens, floats, batch: int, seed: int):
    config = model.config
    if config.n_input == "bridge":
        return floats(batch, 7, config.n_dim, seed=seed), dict(y=floats(batch, 5, config.n_dim, seed=seed + 1))
    return tokens(batch, 9, seed=seed), {}


@pytest.mark.parametrize("overrides", SAMPLE_CASES.values(), ids=SAMPLE_CASES.keys())
def test_per_sample_routing_equals_batch_of_one(make_model, tokens, floats, overrides):
    model = make_model(n_routing="sample", **overrides)
    alone_model = twin(model, n_routing="batch")  # the original's routing, which a batch of one cannot share
    for seed in range(2):
        inputs, extra = sample_inputs(model, tokens, floats, 6, seed)
        with torch.no_grad():
            together = model(inputs, trace=True, **extra)
            alone = [
                alone_model(
                    row(inputs, b), trace=True, implementation="reference", **{k: row(v, b) for k, v in extra.items()}
                )
                for b in range(inputs.shape[0])
            ]
        for b, single in enumerate(alone):
            torch.testing.assert_close(together.outputs[b : b + 1], single.outputs, atol=1e-5, rtol=0)
            assert together.trace.sample_routes()[b] == single.trace.sample_routes()[0]
            for own, reference in zip(together.trace.samples[b], single.trace.sections):
                assert (own.start, own.order, own.count, own.stop_reason) == (
                    reference.start,
                    reference.order,
                    reference.count,
                    reference.stop_reason,
                )
                assert [(h.source, h.chosen, h.passed) for h in own.hops] == [
                    (h.source, h.chosen, h.passed) for h in reference.hops
                ]
                assert [c.mean_voltage for c in own.indexer] == pytest.approx(
                    [c.mean_voltage for c in reference.indexer], abs=1e-5
                )
        # the activation count: neurons that fired for any sample
        union = sum(
            len({n for single in alone for n in single.trace.sections[i].order}) for i in range(len(model.sections))
        )
        assert together.neuron_activation_count == union


def test_per_sample_routes_differ_across_samples(make_model, tokens):
    """Otherwise the test above would not tell per-sample routing from batch routing."""
    model = make_model(n_routing="sample")
    routes = set()
    for seed in range(3):
        with torch.no_grad():
            trace = model(tokens(6, 9, seed=seed), trace=True).trace
        routes |= {str(r) for r in trace.sample_routes()}
    assert len(routes) > 1


def test_per_sample_routing_with_padding_mask(make_model, tokens):
    model = make_model(n_routing="sample", n_seed=5)
    alone_model = twin(model, n_routing="batch")
    inputs = tokens(4, 8, seed=3)
    mask = torch.ones_like(inputs)
    mask[1, :3] = 0
    mask[3, :1] = 0
    with torch.no_grad():
        together = model(inputs, attention_mask=mask, trace=True)
        for b in range(4):
            single = alone_model(row(inputs, b), attention_mask=row(mask, b), trace=True)
            torch.testing.assert_close(together.outputs[b : b + 1], single.outputs, atol=1e-5, rtol=0)
            assert together.trace.sample_routes()[b] == single.trace.sample_routes()[0]


def test_per_sample_routing_does_not_depend_on_batch_mates(make_model, tokens):
    model = make_model(n_routing="sample", n_seed=6)
    inputs = tokens(5, 8, seed=4)
    with torch.no_grad():
        full = model(inputs).outputs
        reordered = model(inputs.flip(0)).outputs.flip(0)
        subset = model(inputs[1:3]).outputs
    torch.testing.assert_close(reordered, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(subset, full[1:3], atol=1e-5, rtol=0)


def test_batch_routing_of_one_sample_equals_per_sample(make_model, tokens):
    model = make_model()
    per_sample = twin(model, n_routing="sample")
    x = tokens(1, 9, seed=7)
    with torch.no_grad():
        a, b = model(x, trace=True), per_sample(x, trace=True)
    torch.testing.assert_close(a.outputs, b.outputs, atol=1e-5, rtol=0)
    assert a.trace.sample_routes() == b.trace.sample_routes()


@pytest.mark.parametrize("configured, asked", [("batch", "sample"), ("sample", "batch")])
def test_a_pass_can_ask_for_the_other_routing(make_model, tokens, configured, asked):
    """model(x, routing=...) routes as a copy with that n_routing would, and leaves the config alone
    (the app's shared models are run both ways without copying their weights)."""
    model = make_model(n_routing=configured, n_seed=6)
    other = twin(model, n_routing=asked)
    x = tokens(5, 8, seed=4)
    with torch.no_grad():
        asked_out, other_out = model(x, trace=True, routing=asked), other(x, trace=True)
        own_out = model(x, trace=True)
    torch.testing.assert_close(asked_out.outputs, other_out.outputs, atol=1e-5, rtol=0)
    assert asked_out.trace.sample_routes() == other_out.trace.sample_routes() != own_out.trace.sample_routes()
    assert asked_out.trace.mode == asked and own_out.trace.mode == configured
    assert model.routes(x, routing=asked).sample_routes() == other_out.trace.sample_routes()
    assert model.config.n_routing == configured
    with pytest.raises(ValueError, match="routing must be one of 'batch', 'sample', got 'alone'"):
        model(x, routing="alone")


# -- trainable routing -----------------------------------------------------------------------------


def routing_grads(model: Genesis) -> dict[str, torch.Tensor | None]:
    return {
        f"sections.{i}.{name}": section.get_parameter(name).grad
        for i, section in enumerate(model.sections)
        for name in ROUTING_PARTS
    }


def backward(model: Genesis, inputs: torch.Tensor, implementation: str = "fast") -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    out = model(inputs, labels=inputs, implementation=implementation)
    out.loss.backward()
    return out.loss.detach()


@pytest.mark.parametrize(
    "routing,implementation", [("batch", "fast"), ("batch", "reference"), ("sample", "fast")], ids=str
)
def test_trainable_routing_reaches_dendrites_somas_and_thresholds(make_model, tokens, routing, implementation):
    model = make_model(n_trainable_routing=True, n_routing=routing)
    loss = backward(model, tokens(6, 9, seed=1), implementation)
    assert torch.isfinite(loss)
    grads = routing_grads(model)
    for part in ROUTING_PARTS:
        reached = [g for name, g in grads.items() if name.endswith(part) and g is not None and g.abs().sum() > 0]
        assert reached, f"no gradient reached any {part}"
    assert all(g is None or torch.isfinite(g).all() for g in grads.values())
    # thresholds: exactly the neurons that were chosen at a hop where some sample passed
    with torch.no_grad():
        trace = model(tokens(6, 9, seed=1), trace=True, implementation=implementation).trace
    for i, section in enumerate(model.sections):
        gate_neurons = {h.chosen for st in trace.sample_sections(0) if st.section == i for h in st.hops if h.fired}
        if routing == "batch":
            threshold_grad = section.threshold.grad
            assert {n for n in range(section.n_neurons) if threshold_grad[n] != 0} <= set(trace.sections[i].order)
            assert gate_neurons <= {n for n in range(section.n_neurons) if threshold_grad[n] != 0}


def test_trainable_routing_forward_equals_the_faithful_forward(make_model, tokens):
    trainable = make_model(n_trainable_routing=True, n_seed=8)
    faithful = twin(trainable, n_trainable_routing=False)
    for routing in ("batch", "sample"):
        a, b = twin(trainable, n_routing=routing), twin(faithful, n_routing=routing)
        for seed in range(3):
            inputs = tokens(5, 9, seed=seed)
            out_a = a(inputs, labels=inputs, trace=True)  # grad on: the straight-through gates are in the graph
            with torch.no_grad():
                out_b = b(inputs, labels=inputs, trace=True)
            assert out_a.outputs.requires_grad
            assert torch.equal(out_a.outputs, out_b.outputs)
            assert torch.equal(out_a.loss, out_b.loss)
            assert out_a.trace.sample_routes() == out_b.trace.sample_routes()


def test_trainable_gradients_agree_between_fast_and_reference(make_model, tokens):
    model = make_model(n_trainable_routing=True, n_seed=9)
    inputs = tokens(6, 9, seed=2)
    backward(model, inputs, "fast")
    fast = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    backward(model, inputs, "reference")
    reference = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    assert fast.keys() == reference.keys()
    for key in fast:
        torch.testing.assert_close(fast[key], reference[key], atol=1e-5, rtol=1e-4, msg=key)


@pytest.mark.parametrize("implementation", ["fast", "reference"])
def test_default_routing_gets_no_gradient(make_model, tokens, implementation):
    """Faithful to the original (SPEC flaw 2): voltages only choose, so routing parts never learn."""
    model = make_model()
    backward(model, tokens(6, 9, seed=1), implementation)
    for name, grad in routing_grads(model).items():
        assert grad is None or not grad.any(), name
    assert model.output.lm_head.weight.grad.abs().sum() > 0
    assert any(s.axon.weight.grad is not None and s.axon.weight.grad.any() for s in model.sections)


def test_trainable_routing_learns_thresholds(make_model, tokens):
    trainable = make_model(n_trainable_routing=True, n_seed=10)
    faithful = twin(trainable, n_trainable_routing=False)
    learned = []
    for model in (trainable, faithful):
        model.train()
        before = model.thresholds()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        torch.manual_seed(0)
        for seed in range(3):
            optimizer.zero_grad()
            inputs = tokens(6, 9, seed=seed)
            loss = model(inputs, labels=inputs).loss
            assert torch.isfinite(loss)
            loss.backward()
            optimizer.step()
        learned.append(model.thresholds() != before)
    assert learned == [True, False]
