"""Probes of one input: encoding, outputs, batch vs alone, causality, what-if, the walkthrough."""

from __future__ import annotations

import logging

import pytest
import torch

import genesis
from genesis import figures, probes
from genesis.tokenization import TextError


def test_encode_for_checks_the_model():
    config = genesis.preset("app")
    assert probes.encode_for(config, "hé") == (list("hé".encode()), None)
    ids, note = probes.encode_for(config, "x" * 300)
    assert len(ids) == 256 and "only the last 256" in note
    with pytest.raises(TextError, match="empty"):
        probes.encode_for(config, " \n ")
    with pytest.raises(TextError, match="n_input='bridge'"):
        probes.encode_for(genesis.preset("app", n_input="bridge"), "hi")
    with pytest.raises(TextError, match="n_vocab_size"):
        probes.encode_for(genesis.preset("app", n_vocab_size=100), "hi")


def test_token_labels():
    assert [probes.token_label(t) for t in (65, 32, 10, 200, 256, 257)] == ["A", "␣", "⏎", "\\xc8", "<eos>", "<pad>"]


def test_outputs(lm_model, classifier_model, tokens):
    ids = tokens(1, 8)[0].tolist()
    out = probes.run(lm_model, ids)
    top = probes.top_k_next(out, 5)
    probs = torch.softmax(out.logits[0, -1], -1)
    assert [t for t, _ in top] == probs.topk(5).indices.tolist()
    assert [p for _, p in top] == pytest.approx(probs.topk(5).values.tolist())
    out = probes.run(classifier_model, ids)
    assert probes.class_probabilities(out) == pytest.approx(out.outputs[0].tolist())
    assert sum(probes.class_probabilities(out)) == pytest.approx(1.0)


def test_greedy_continuation_is_the_argmax(lm_model, tokens, caplog):
    ids = tokens(1, 5)[0].tolist()
    with caplog.at_level(logging.WARNING):
        new = probes.continuation(lm_model, ids, 3, 0.0, 0.9, 0)
    assert not [r for r in caplog.records if "generation flags" in r.getMessage()]  # top-p, temperature unused
    expected, current = [], list(ids)
    for _ in range(3):
        token = int(probes.run(lm_model, current).logits[0, -1].argmax())
        expected.append(token)
        current.append(token)
        if token == 256:
            break
    assert new == expected


def test_sampled_continuation_follows_its_seed(lm_model, tokens):
    ids = tokens(1, 5)[0].tolist()
    first = probes.continuation(lm_model, ids, 12, 0.8, 0.95, 3)  # raised "multiple values for do_sample"
    assert first == probes.continuation(lm_model, ids, 12, 0.8, 0.95, 3)
    others = {tuple(probes.continuation(lm_model, ids, 12, 0.8, 0.95, seed)) for seed in range(4, 8)}
    assert len(others | {tuple(first)}) > 1 and all(0 <= t < 258 for t in first)


def test_batch_vs_alone_matches_direct_runs(lm_model, tokens):
    lines = [tokens(1, n, seed=n)[0].tolist() for n in (3, 9, 6, 12)]
    batch, rows = probes.batch_vs_alone(lm_model, lines)
    x, mask = probes.pad_batch(lines)
    assert x.shape == (4, 12) and mask.sum(1).tolist() == [3, 9, 6, 12]
    direct = lm_model(x, attention_mask=mask, trace=True).trace.sample_routes()
    for i, row in enumerate(rows):
        assert row.batch == direct[i] == batch.trace.sample_routes()[i]
        assert row.alone == lm_model(torch.tensor([lines[i]]), trace=True).trace.sample_routes()[0]
        assert row.differs == (row.batch != row.alone)
        assert row.differing_sections == [s for s in range(2) if row.batch[s] != row.alone[s]]


def test_causality_leaks_only_through_the_route(lm_model, tokens):
    ids = tokens(1, 10)[0].tolist()
    result = probes.causality(lm_model, ids)
    assert result.positions == list(range(10)) and len(result.delta) == 10
    base = probes.run(lm_model, ids)
    for k, changed, leak in zip(result.positions, result.route_changed, result.leak()):
        assert result.delta[k][k] > 0  # the replaced token's own output always changes
        if not changed:
            assert leak < 1e-5  # attention is causal: the past changes only when the route does
        variant = list(ids)
        variant[k] = (ids[k] + 1) % 256
        assert changed == (probes.run(lm_model, variant).trace.sample_routes() != base.trace.sample_routes())
    assert probes.causality(lm_model, ids, max_positions=3).positions == [7, 8, 9]


def test_edge_inputs_get_messages_that_name_the_problem(lm_model, classifier_model, tokens):
    with pytest.raises(ValueError, match="no lines"):
        probes.batch_vs_alone(lm_model, [])
    with pytest.raises(ValueError, match="line 1 is empty"):
        probes.batch_vs_alone(lm_model, [[1, 2], []])
    for empty in ([], torch.zeros(1, 0, dtype=torch.long)):  # [] used to be called floats for a bridge model
        with pytest.raises(ValueError, match=r"^empty inputs"):
            probes.run(lm_model, empty)
    with pytest.raises(ValueError, match="needs a language model's output"):
        probes.top_k_next(classifier_model(tokens(1, 6)))  # used to be an IndexError
    edited = probes.copy_for_edits(lm_model)
    with pytest.raises(ValueError, match=r"neuron must be in \[0, 7\], got -1"):
        probes.set_threshold(edited, lm_model, 0, -1, 0.1)  # used to edit the last neuron
    with pytest.raises(ValueError, match=r"section must be in \[0, 1\], got 2"):
        probes.set_threshold(edited, lm_model, 2, 0, 0.1)


def test_set_threshold_changes_only_the_copy(lm_model, tokens):
    ids = tokens(1, 10)[0].tolist()
    before = [list(t) for t in lm_model.thresholds()]
    edited = probes.copy_for_edits(lm_model)
    section = next(s for s in probes.run(lm_model, ids).trace.sections if s.hops and s.hops[0].fired)
    neuron = section.hops[0].chosen
    probes.set_threshold(edited, lm_model, section.section, neuron, 1.0)
    assert lm_model.thresholds() == before
    assert edited.thresholds()[section.section][neuron] == 1.0
    assert probes.run(edited, ids).trace.sections[section.section].route_of(0) == [section.start]
    probes.set_threshold(edited, lm_model, section.section, (neuron + 1) % 8, 0.9)  # earlier edit undone
    assert edited.thresholds()[section.section][neuron] == before[section.section][neuron]


def test_walkthrough_follows_the_trace(lm_model, tokens):
    out = probes.run(lm_model, tokens(1, 10)[0].tolist())
    steps = probes.walkthrough(lm_model.config, out.trace)
    kinds = [s.kind for s in steps]
    assert kinds[:2] == ["input", "split"] and kinds[-2:] == ["combine", "output"]
    expected = [(s.section, h) for s in out.trace.sections for h in range(len(s.hops) + 1)]
    assert [(s.section, s.step) for s in steps if s.kind in ("start", "hop")] == expected
    for step in steps:
        if step.kind == "start":
            assert f"Neuron {out.trace.sections[step.section].start} has the highest" in step.text
        if step.kind == "hop":
            hop = out.trace.sections[step.section].hops[step.step - 1]
            assert f"Neuron {hop.source} offers" in step.text
            assert ("it fires" in step.text) == hop.passed[0]
            if hop.passed[0]:  # SPEC: the passing rows become m + ln(p), ln of the connecting neuron
                assert f"through neuron {hop.source}'s layer norm" in step.text
    for section in out.trace.sections:
        last = [s for s in steps if s.kind == "hop" and s.section == section.section and s.step == len(section.hops)]
        assert all(f"The route ends at neuron {section.route_of(0)[-1]}: " in s.text for s in last)


def test_a_plain_start_neuron_fires_without_attention(make_model, tokens):
    for attentive, parts in ((2, "(attention, axon, synapses)"), (0, "(axon, synapses)")):
        model = make_model(n_attentive_neurons=attentive)
        out = probes.run(model, tokens(1, 10)[0].tolist())
        starts = [s for s in probes.walkthrough(model.config, out.trace) if s.kind == "start"]
        assert all(s.text.endswith(f"it fires {parts}.") for s in starts)


def offered(section, sample: int) -> list:
    """The hops a sample was offered, found another way than `hops_of`: those whose source it
    went through (a neuron fires at most once, so a hop's source names it)."""
    route = section.route_of(sample)
    return [hop for hop in section.hops if hop.source in route]


def branching_batch(model, tokens):
    """A batch trace where some sample stops while the section's route goes on for others."""
    for seed in range(20):
        trace = model(tokens(4, 10, seed=seed), trace=True).trace
        for section in trace.sections:
            for sample in range(4):
                if len(offered(section, sample)) < len(section.hops):
                    return trace, section, sample
    raise AssertionError("no branching route in 20 batches")


def test_route_at_step(lm_model, tokens):
    out = lm_model(tokens(3, 10), trace=True)
    for section in out.trace.sections:
        for sample in range(3):
            route, own = section.route_of(sample), offered(section, sample)
            assert section.hops_of(sample) == own
            assert probes.route_at_step(section, 0, sample) == (route[:1], None)
            for step, hop in enumerate(own, start=1):
                so_far, not_fired = probes.route_at_step(section, step, sample)
                assert so_far == route[: step + 1]
                if hop.passed[sample]:
                    assert not_fired is None and so_far[-1] == hop.chosen
                else:
                    assert not_fired == (hop.source, hop.chosen) and step == len(own)
            with pytest.raises(ValueError, match=f"step must be in \\[0, {len(own)}\\]"):
                probes.route_at_step(section, len(own) + 1, sample)


def test_a_sample_that_stopped_in_a_batch_is_described_by_its_own_hops(make_model, tokens):
    model = make_model(n_neurons=12, n_neighbors=3)
    trace, section, sample = branching_batch(model, tokens)
    own = offered(section, sample)
    assert section.hops_of(sample) == own and not own[-1].passed[sample]
    assert section.stop_reason_of(sample) == "chosen candidate below its threshold"
    hops = [
        s for s in probes.walkthrough(model.config, trace, sample) if s.kind == "hop" and s.section == section.section
    ]
    assert len(hops) == len(own)  # not the section's later hops, where its row is zero and voltages 0.5
    assert hops[-1].text.endswith(
        f"The route ends at neuron {own[-1].source}: the chosen candidate's voltage did not exceed its threshold "
        "(only the chosen one is compared), so the signal stops here."
    )
    assert "does not fire" in hops[-1].text
    figure = figures.hop_step_figure(section, len(own), sample)
    assert figure.layout.title.text.startswith(f"Hop {len(own)}: {own[-1].source} → {own[-1].chosen} does not fire")
    with pytest.raises(ValueError, match="route in section"):
        figures.hop_step_figure(section, len(own) + 1, sample)


def test_a_model_with_nan_scores_says_so_instead_of_sampling():
    """torch.multinomial raised "probability tensor contains either inf, nan or element < 0" (a valid
    config whose long routes overflow gives NaN scores)."""
    model = genesis.Genesis(genesis.preset("tiny")).eval()
    with torch.no_grad():
        model.output.lm_head.bias.fill_(float("nan"))
    for temperature in (0.0, 0.8):
        with pytest.raises(ValueError, match="next-token scores are NaN or infinite"):
            probes.continuation(model, [72, 105], 5, temperature, 0.9, 0)
