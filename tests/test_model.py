"""The model: shapes, losses, wiring, determinism, the fast path against the literal SPEC path."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from genesis import Genesis, GenesisConfig, GenesisOutput, neighbor_wiring
from genesis.modeling import DROPOUT, dropout


def original_wiring(config) -> list[list[list[int]]]:
    """How the original wired neurons: Python's global generator, seeded, then random.sample."""
    state = random.getstate()
    try:
        random.seed(config.n_seed)
        return [
            [
                random.sample([k for k in range(config.n_neurons) if k != j], config.n_neighbors)
                for j in range(config.n_neurons)
            ]
            for _ in range(config.n_sections)
        ]
    finally:
        random.setstate(state)


# -- wiring ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides", [dict(), dict(n_dim=48, n_sections=3, n_neurons=10, n_neighbors=9, n_seed=123), dict(n_neighbors=0)]
)
def test_wiring_is_the_originals_and_exists_at_once(make_config, overrides):
    config = make_config(**overrides)
    expected = original_wiring(config)
    random.seed(999)
    before = random.getstate()
    model = Genesis(config)
    assert random.getstate() == before, "building a model must not touch Python's global generator"
    assert model.neighbor_lists() == expected == neighbor_wiring(config)
    for section in model.neighbor_lists():
        for j, neighbors in enumerate(section):
            assert j not in neighbors and len(set(neighbors)) == len(neighbors) == config.n_neighbors


def test_neighbor_lists_is_a_copy(lm_model):
    wiring = lm_model.neighbor_lists()
    wiring[0][0].append(99)
    assert 99 not in lm_model.neighbor_lists()[0][0]


# -- initialisation and determinism ----------------------------------------------------------------


def test_same_config_gives_same_weights_whatever_the_global_seed(make_config):
    torch.manual_seed(1)
    a = Genesis(make_config())
    torch.manual_seed(2)
    b = Genesis(make_config())
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    c = Genesis(make_config(n_seed=2))
    assert not torch.equal(a.output.lm_head.weight, c.output.lm_head.weight)


def test_initial_values_follow_the_original(make_config):
    model = Genesis(make_config())
    for section in model.sections:
        assert torch.equal(section.threshold, torch.full_like(section.threshold, 0.5))
        assert torch.equal(section.norm, torch.ones_like(section.norm))
        assert torch.equal(section.dendrites.norm, torch.ones_like(section.dendrites.norm))
        bound = 1 / section.dendrites.weight.shape[-1] ** 0.5
        assert section.dendrites.weight.abs().max() <= bound
    assert torch.equal(model.input.ln.bias, torch.zeros_like(model.input.ln.bias))


def test_eval_is_deterministic_and_train_uses_dropout(lm_model, tokens):
    inputs = tokens(3, 8)
    with torch.no_grad():
        first, second = lm_model(inputs).logits, lm_model(inputs).logits
    assert torch.equal(first, second)
    model = Genesis(lm_model.config)
    model.load_state_dict(lm_model.state_dict())
    model.train()
    with torch.no_grad():
        torch.manual_seed(0)
        a = model(inputs).logits
        torch.manual_seed(1)
        b = model(inputs).logits
    assert not torch.equal(a, b)


def test_dropout_draws_what_f_dropout_draws():
    """The fast path's dropout (numpy's PCG64 words seeded from torch's generator) against F.dropout."""
    x = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    ours, theirs = dropout(x.clone()), F.dropout(x, DROPOUT, True)
    for out in (ours, theirs):  # 2M draws: the zeroed share is within 0.1% of DROPOUT
        assert abs((out == 0).double().mean().item() - DROPOUT) < 1e-3
    both = (ours != 0) & (theirs != 0)
    assert torch.equal(ours[both], theirs[both])  # survivors scaled by the very same float32 factor
    torch.manual_seed(7)
    first = dropout(x[:1000].clone())
    torch.manual_seed(7)
    assert torch.equal(first, dropout(x[:1000].clone()))  # torch.manual_seed fixes the mask
    assert not torch.equal(first, dropout(x[:1000].clone()))  # and the next draw is another one
    leaf = x[:1000].clone().requires_grad_()
    out = dropout(leaf)
    out.sum().backward()
    assert torch.equal(leaf, x[:1000])  # not in place under autograd
    scale = F.dropout(torch.ones(100), DROPOUT, True).max()
    assert torch.equal(leaf.grad == 0, out == 0) and torch.equal(leaf.grad.unique(), torch.stack([scale * 0, scale]))
    for dtype in (torch.float64, torch.bfloat16):  # the dtype and its own scale, as F.dropout
        dropped = dropout(torch.ones(1000, dtype=dtype))
        assert dropped.dtype == dtype and dropped.max() == F.dropout(torch.ones(10, dtype=dtype), DROPOUT, True).max()


# -- shapes and outputs ----------------------------------------------------------------------------


def test_causal_lm_outputs(lm_model, tokens):
    inputs = tokens(3, 8)
    with torch.no_grad():
        out = lm_model(inputs, labels=inputs)
    assert isinstance(out, GenesisOutput)
    assert out.logits is out.outputs
    assert out.logits.shape == (3, 8, 258)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, 258), inputs[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    assert isinstance(out.neuron_activation_count, int)
    assert 2 <= out.neuron_activation_count <= 2 * 8
    assert out.trace is None


def test_generate_keyword_names(lm_model, tokens):
    inputs = tokens(2, 6)
    with torch.no_grad():
        by_position = lm_model(inputs).logits
        by_name = lm_model(input_ids=inputs, use_cache=False, return_dict=True).logits
        as_tuple = lm_model(inputs, labels=inputs, return_dict=False)  # the fields that are set, in order
    assert torch.equal(by_position, by_name)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 4 and torch.equal(as_tuple[2], by_position)  # no trace
    assert as_tuple[0].dim() == 0 and isinstance(as_tuple[3], int)  # loss first, the activation count


def test_binary_classifier_outputs_and_loss(make_model, tokens):
    model = make_model(n_output="sequence_classifier", n_outputs=1)
    inputs, labels = tokens(4, 7), torch.tensor([0.0, 1.0, 1.0, 0.0])
    with torch.no_grad():
        out = model(inputs, labels=labels)
    assert out.outputs.shape == (4, 1)
    torch.testing.assert_close(out.outputs, torch.sigmoid(out.logits))
    torch.testing.assert_close(out.loss, F.binary_cross_entropy(out.outputs.squeeze(-1), labels))


@pytest.mark.parametrize(
    "labels, message",
    [
        ([0.5, 1.0, 2.0, 0.0, 1.0], "must be integer class indices, got torch.float32"),
        ([0, 1, 3, 0, 1], r"class indices in \[0, 3\) \(n_outputs=3\), got 3"),
        ([0, -2, 1, 0, 1], "got -2"),
    ],
)
def test_multiclass_labels_are_checked_not_truncated(classifier_model, tokens, labels, message):
    with pytest.raises(ValueError, match=message):
        classifier_model(tokens(5, 7), labels=torch.tensor(labels))


def test_multiclass_label_minus_100_is_ignored(classifier_model, tokens):
    inputs = tokens(5, 7)
    with torch.no_grad():
        some = classifier_model(inputs, labels=torch.tensor([0, -100, 1, -100, 2]))
    torch.testing.assert_close(some.loss, F.cross_entropy(some.logits[[0, 2, 4]], torch.tensor([0, 1, 2])))


def test_multiclass_loss_is_cross_entropy_on_logits(classifier_model, tokens):
    """SPEC: the original applied NLLLoss to softmax probabilities; this uses cross entropy."""
    inputs, labels = tokens(5, 7), torch.tensor([0, 2, 1, 1, 0])
    with torch.no_grad():
        out = classifier_model(inputs, labels=labels)
    assert out.outputs.shape == (5, 3)
    torch.testing.assert_close(out.outputs.sum(-1), torch.ones(5))
    torch.testing.assert_close(out.outputs, torch.softmax(out.logits, -1))
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    assert not torch.allclose(out.loss, F.nll_loss(out.outputs, labels))


def test_bridge_and_none_modes(make_model, floats):
    bridge = make_model(n_input="bridge", n_output="bridge")
    x = floats(2, 5, 32)
    with torch.no_grad():
        out = bridge(x, labels=x)
    assert out.outputs.shape == (2, 5, 32)
    torch.testing.assert_close(out.loss, F.mse_loss(out.outputs, x))
    none = make_model(n_input="none", n_output="none", n_section="sequential")
    with torch.no_grad():
        out = none(x)
    assert out.outputs.shape == (2, 5, 32) and out.loss is None


def test_cross_attention_reads_y(make_model, floats):
    for section_mode in ("split", "sequential"):
        model = make_model(n_input="bridge", n_output="bridge", n_cross_attention=True, n_section=section_mode)
        x = floats(2, 6, 32)
        with torch.no_grad():
            a = model(x, y=floats(2, 4, 32, seed=1)).outputs
            b = model(x, y=floats(2, 4, 32, seed=2)).outputs
            c = model(x, y=floats(2, 9, 32, seed=2)).outputs  # y may have its own length
        assert a.shape == c.shape == (2, 6, 32)
        assert not torch.allclose(a, b)


def test_causal_lm_with_cross_attention_takes_y_of_any_length(make_model, tokens, floats):
    """The causal and padding masks are over the input's positions; y's keys are not masked."""
    model = make_model(n_cross_attention=True, n_seed=11)
    inputs, mask = tokens(3, 9), torch.ones(3, 9, dtype=torch.long)
    mask[1, :2] = 0
    for length in (4, 9, 12):
        y = floats(3, length, 32, seed=length)
        with torch.no_grad():
            fast = model(inputs, attention_mask=mask, y=y, trace=True)
            reference = model(inputs, attention_mask=mask, y=y, trace=True, implementation="reference")
            other = model(inputs, attention_mask=mask, y=y + 1).logits
        assert fast.logits.shape == (3, 9, 258)
        torch.testing.assert_close(fast.logits, reference.logits, atol=1e-5, rtol=0)
        assert not torch.allclose(fast.logits, other)


def test_bad_inputs_are_refused_with_a_message(lm_model, tokens):
    with pytest.raises(ValueError, match="token ids"):
        lm_model(torch.tensor([[1, 2, 258]]))
    with pytest.raises(ValueError, match="n_pos_size"):
        lm_model(tokens(1, 33))
    with pytest.raises(ValueError, match="implementation"):
        lm_model(tokens(1, 4), implementation="slow")
    ids = tokens(2, 5)
    wrong = {  # what a shape error deep inside would otherwise say less clearly
        "1-D ids": (lambda: lm_model(ids[0]), "token ids: a \\(batch, length\\)"),
        "floats": (lambda: lm_model(ids.float()), "n_input='bridge'"),
        "bytes": (lambda: lm_model(ids.to(torch.uint8)), "int64 or int32"),
        "no samples": (lambda: lm_model(ids[:0]), "empty inputs"),
        "no positions": (lambda: lm_model.routes(ids[:, :0]), "empty inputs"),
        "mask length": (lambda: lm_model(ids, attention_mask=torch.ones(2, 3)), "attention_mask must have"),
    }
    for call, message in wrong.values():
        with pytest.raises(ValueError, match=message):
            call()
    bridge = Genesis(GenesisConfig(**{**lm_model.config.user_dict(), "n_input": "bridge"})).eval()
    with pytest.raises(ValueError, match=f"a \\(batch, length, {bridge.config.n_dim}\\) float tensor"):
        bridge(ids)
    assert lm_model(ids.int()).logits.shape == (2, 5, 258)  # int32 ids are ids too
    with pytest.raises(ValueError, match="pass only one"):  # not silently the first of them
        lm_model(ids, input_ids=ids[:1])


def test_misspelt_or_unservable_keywords_are_refused(lm_model, tokens):
    """**kwargs (for generate's use_cache and friends) used to swallow attn_mask=... and run unmasked."""
    ids = tokens(2, 5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'attn_mask' \\(did you mean attention_mask\\?\\)"):
        lm_model(ids, attn_mask=torch.ones_like(ids))
    with pytest.raises(ValueError, match="not used by the model: \\['tracee'\\]"):  # transformers' own check
        lm_model.generate(ids, max_new_tokens=2, tracee=True, pad_token_id=257)
    with pytest.raises(ValueError, match="output_attentions: Genesis has no stack of attention layers"):
        lm_model(ids, output_attentions=True)
    with torch.no_grad():  # what transformers passes is taken (and means nothing here)
        out = lm_model(ids, use_cache=False, output_attentions=False, token_type_ids=None, position_ids=None)
        assert torch.equal(out.logits, lm_model(ids).logits)


def test_lm_labels_are_checked_with_a_message(lm_model, tokens):
    ids = tokens(2, 6)
    with torch.no_grad():
        as_int32 = lm_model(ids, labels=ids.int()).loss  # int32 labels, as int32 ids
        masked = ids.clone()
        masked[:, 3] = -100
        some = lm_model(ids, labels=masked)
    torch.testing.assert_close(as_int32, lm_model(ids, labels=ids).loss)
    kept = masked[:, 1:].reshape(-1) != -100
    torch.testing.assert_close(
        some.loss, F.cross_entropy(some.logits[:, :-1].reshape(-1, 258)[kept], ids[:, 1:].reshape(-1)[kept])
    )
    for labels, message in (
        (ids.to(torch.uint8), "int64 or int32\\), got torch.uint8"),  # its comparison with -100 wrapped
        (ids[:, :5], r"labels must have the inputs' shape \(2, 6\), got \(2, 5\)"),
        (ids + 300, r"token ids in \[0, 257\] or -100, got [3-5][0-9][0-9]"),
        (ids.float(), "tensor of token ids \\(int64 or int32\\), got torch.float32"),
    ):
        with pytest.raises(ValueError, match=message):
            lm_model(ids, labels=labels)


def test_binary_labels_ignore_minus_100_and_are_checked(make_model, tokens):
    model = make_model(n_output="sequence_classifier", n_outputs=1)
    inputs = tokens(4, 7)
    with torch.no_grad():
        out = model(inputs, labels=torch.tensor([0, -100, 1, -100]))
    torch.testing.assert_close(out.loss, F.binary_cross_entropy(out.outputs.view(-1)[[0, 2]], torch.tensor([0.0, 1.0])))
    with pytest.raises(ValueError, match=r"must be in \[0, 1\] \(or -100\), got 2"):
        model(inputs, labels=torch.tensor([0, 2, 1, 0]))
    with pytest.raises(ValueError, match=r"must be in \[0, 1\] \(or -100\), got nan"):  # torch error before
        model(inputs, labels=torch.tensor([0.0, float("nan"), 1.0, 0.0]))
    with pytest.raises(ValueError, match="labels must be a tensor, got list"):
        model(inputs, labels=[0, 1, 1, 0])
    with pytest.raises(ValueError, match="one 0/1 value per sample, got shape \\(3,\\)"):
        model(inputs, labels=torch.tensor([0, 1, 1]))


def test_bridge_labels_and_float_dtypes_are_checked(make_model, floats):
    """mse_loss broadcast labels of another shape (with only a warning); other float dtypes met a
    raw "mat1 and mat2 must have the same dtype"."""
    model = make_model(n_input="bridge", n_output="bridge", n_cross_attention=True)
    x = floats(2, 5, 32)
    for labels in (x[..., :1], x.long(), x[0]):
        with pytest.raises(ValueError, match="labels of a bridge output must be floats of the outputs' shape"):
            model(x, labels=labels)
    with pytest.raises(ValueError, match="inputs: float16, but the model's weights are float32"):
        model(x.half())
    with pytest.raises(ValueError, match="y: float64, but the model's weights are float32"):
        model(x, y=floats(2, 3, 32).double())


def test_multiclass_labels_of_another_length_are_named(classifier_model, tokens):
    with pytest.raises(ValueError, match="one class index per sample \\(5\\), got shape \\(3,\\)"):
        classifier_model(tokens(5, 7), labels=torch.tensor([0, 1, 2]))


def test_generate_hands_routing_and_y_to_the_passes(make_model, tokens, floats):
    """generate(routing=...) and generate(y=...) were accepted and dropped."""
    model = make_model(n_seed=6)
    ids = tokens(4, 6, seed=1)
    per_sample = make_model(n_seed=6, n_routing="sample")  # the same weights (same seeds)
    asked = model.generate(ids, max_new_tokens=6, routing="sample", pad_token_id=257)
    assert torch.equal(asked, per_sample.generate(ids, max_new_tokens=6, pad_token_id=257))
    assert not torch.equal(asked, model.generate(ids, max_new_tokens=6, pad_token_id=257))  # batch routing
    crossed = make_model(n_cross_attention=True)
    with pytest.raises(ValueError, match="y must be a \\(batch, length, 32\\)"):
        crossed.generate(ids, y=floats(4, 7, 33), max_new_tokens=2, pad_token_id=257)
    one, other = floats(4, 7, 32, seed=1), floats(4, 7, 32, seed=2)
    with torch.no_grad():
        expected = crossed(ids, y=one).logits[:, -1].argmax(-1)
    assert torch.equal(crossed.generate(ids, y=one, max_new_tokens=1, pad_token_id=257)[:, -1], expected)
    assert not torch.equal(
        crossed.generate(ids, y=one, max_new_tokens=6, pad_token_id=257),
        crossed.generate(ids, y=other * 5, max_new_tokens=6, pad_token_id=257),
    )


def test_y_is_checked_with_a_message(make_model, floats, tokens):
    model = make_model(n_input="bridge", n_output="bridge", n_cross_attention=True)
    x = floats(2, 6, 32)
    for y, message in (
        (
            floats(2, 4, 8),
            r"y must be a \(batch, length, 32\) float tensor \(n_dim=32\), got torch.float32 of shape \(2, 4, 8\)",
        ),
        (floats(3, 4, 32), "y must have the inputs' batch size 2"),
        (floats(2, 4, 32)[0], "y must be a"),
    ):
        with pytest.raises(ValueError, match=message):
            model(x, y=y)
    plain = make_model()
    with pytest.raises(ValueError, match="n_cross_attention=False"):  # it used to be ignored
        plain(tokens(2, 6), y=floats(2, 4, 32))


def test_a_model_built_on_the_meta_device_initialises_completely(make_config, tokens):
    """to_empty() leaves every tensor as raw memory; reset_parameters() must fill the wiring table
    too (a buffer), or per-sample routing gathers neighbors from garbage."""
    config = make_config(n_routing="sample")
    with torch.device("meta"):
        model = Genesis(config)
    model = model.to_empty(device="cpu")
    model.reset_parameters()
    built = Genesis(config).eval()
    ids = tokens(3, 8)
    with torch.no_grad():
        a, b = model.eval()(ids, trace=True), built(ids, trace=True)
    assert torch.equal(a.outputs, b.outputs) and a.trace.sample_routes() == b.trace.sample_routes()
    for ours, theirs in zip(model.buffers(), built.buffers()):
        assert torch.equal(ours, theirs)


def test_reference_refuses_per_sample_routing(make_model, tokens):
    with pytest.raises(ValueError, match="batch"):
        make_model(n_routing="sample")(tokens(2, 4), implementation="reference")


# -- the fast path computes what the literal path computes ------------------------------------------

CONFIGS = {
    "lm-split": dict(),
    "lm-sequential-3": dict(n_section="sequential", n_sections=3, n_seed=2),
    "classifier": dict(n_output="sequence_classifier", n_outputs=3, n_seed=3),
    "bridge-cross": dict(n_input="bridge", n_output="bridge", n_cross_attention=True, n_seed=4),
    "no-attentive": dict(n_attentive_neurons=0, n_seed=5),
    "all-attentive": dict(n_attentive_neurons=8, n_neighbors=3, n_seed=6),
    "no-dendrites-or-synapses": dict(n_dendritics=0, n_synapses=0, n_seed=7),
    "deep-chains": dict(n_dendritics=3, n_synapses=2, n_neurons=10, n_neighbors=6, n_seed=8),
    "no-wiring": dict(n_neighbors=0, n_seed=9),
}


@pytest.mark.parametrize("overrides", CONFIGS.values(), ids=CONFIGS.keys())
def test_fast_equals_reference(make_model, tokens, floats, overrides):
    model = make_model(**overrides)
    config = model.config
    for seed, batch in ((0, 1), (1, 5), (2, 8)):
        if config.n_input == "bridge":
            inputs, extra = floats(batch, 7, 32, seed=seed), dict(y=floats(batch, 4, 32, seed=seed + 9))
        else:
            inputs, extra = tokens(batch, 9, seed=seed), {}
        mask = torch.ones(batch, 7 if config.n_input == "bridge" else 9, dtype=torch.long)
        mask[0, :2] = 0
        with torch.no_grad():
            fast = model(inputs, attention_mask=mask, trace=True, **extra)
            reference = model(inputs, attention_mask=mask, trace=True, implementation="reference", **extra)
        torch.testing.assert_close(fast.outputs, reference.outputs, atol=1e-5, rtol=0)
        assert fast.neuron_activation_count == reference.neuron_activation_count
        assert [(s.order, s.alive) for s in fast.trace.sections] == [
            (s.order, s.alive) for s in reference.trace.sections
        ]


def test_a_sample_alone_takes_its_own_route_in_batch_routing(lm_model, tokens):
    """SPEC flaw 4: the batch mean chooses the route, so batch mates can change a sample's route."""
    inputs = tokens(8, 9, seed=3)
    differs = False
    with torch.no_grad():
        together = lm_model(inputs, trace=True).trace.sample_routes()
        for b in range(8):
            alone = lm_model(inputs[b : b + 1], trace=True).trace.sample_routes()[0]
            differs |= alone != together[b]
    assert differs
