"""The original code base's golden vectors, through genesis.compat, in both implementations.

Every CASE.json + CASE.safetensors pair in ../shared/golden is picked up, so added cases are checked
the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genesis.compat import ORIGINAL_FIELDS, CheckpointError, config_from_original, from_original, to_original

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden"
CASES = sorted(GOLDEN.glob("*.json"))
IMPLEMENTATIONS = ("reference", "fast")


def load_case(path: Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(case json, the original's state dict, io tensors) of one golden case."""
    case = json.loads(path.read_text())
    tensors = load_file(str(path.with_suffix(".safetensors")))
    state = {k[len("state.") :]: v for k, v in tensors.items() if k.startswith("state.")}
    io = {k[len("io.") :]: v for k, v in tensors.items() if k.startswith("io.")}
    return case, state, io


def run_case(path: Path, implementation: str):
    case, state, io = load_case(path)
    model = from_original(case["config"], state)
    with torch.no_grad():
        out = model(
            io["inputs"],
            attention_mask=io.get("attention_mask"),
            y=io.get("y"),
            labels=io.get("labels"),
            trace=True,
            implementation=implementation,
        )
    return case, io, model, out


def firing_events(trace) -> list[tuple[int, int, list[bool]]]:
    return [(s.section, n, alive) for s in trace.sections for n, alive in zip(s.order, s.alive)]


def test_golden_cases_are_present():
    assert len(CASES) >= 5, f"expected the golden vectors in {GOLDEN}"
    for path in CASES:
        assert path.with_suffix(".safetensors").exists(), path.name


@pytest.fixture(params=CASES, ids=[p.stem for p in CASES], scope="module")
def case_path(request) -> Path:
    return request.param


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_golden_outputs_and_loss(case_path, implementation):
    case, io, model, out = run_case(case_path, implementation)
    expected = io["outputs"]
    # With labels the original squeezes a classifier's outputs (B instead of B×1): compare values.
    assert out.outputs.numel() == expected.numel()
    torch.testing.assert_close(out.outputs.reshape(expected.shape), expected, atol=1e-5, rtol=0)
    if "loss" in io:
        assert out.loss is not None
        assert abs(float(out.loss) - float(io["loss"].reshape(()))) <= 1e-5
    if case["config"]["n_output"] == "causal_lm":
        assert out.logits is out.outputs


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_golden_routes(case_path, implementation):
    case, io, model, out = run_case(case_path, implementation)
    assert out.neuron_activation_count == case["neuron_activation_count"]
    assert out.trace.count == case["neuron_activation_count"]
    expected = [(e["section"], e["neuron"], e["alive"]) for e in case["activation_events"]]
    assert firing_events(out.trace) == expected


def test_golden_wiring_and_mode(case_path):
    case, state, io = load_case(case_path)
    model = from_original(case["config"], state)
    assert model.neighbor_lists() == case["neighbors"]
    assert not model.training, "from_original returns a model in eval mode"
    assert model.config.is_causal == case.get("causal_attention", model.config.is_causal)


def test_golden_to_original_round_trip(case_path):
    case, state, io = load_case(case_path)
    config, back = to_original(from_original(case["config"], state))
    # the same configuration (the original runs any n_section but "split" sequentially)
    assert config_from_original(config).user_dict() == config_from_original(case["config"]).user_dict()
    assert list(config) == list(ORIGINAL_FIELDS)
    assert set(back) == set(state)
    for key, value in state.items():
        assert back[key].shape == value.shape, key
        assert torch.equal(back[key], value), key


def test_golden_round_trip_reloads_to_same_outputs(case_path):
    case, state, io = load_case(case_path)
    config, back = to_original(from_original(case["config"], state))
    model = from_original(config, back)
    with torch.no_grad():
        out = model(io["inputs"], attention_mask=io.get("attention_mask"), y=io.get("y"))
    torch.testing.assert_close(out.outputs.reshape(io["outputs"].shape), io["outputs"], atol=1e-5, rtol=0)


# -- checkpoint errors name the key ---------------------------------------------------------------


@pytest.fixture(scope="module")
def split_case():
    return load_case(GOLDEN / "lm_split_causal.json")


def test_missing_key_is_named(split_case):
    case, state, _ = split_case
    for key in ("sections.1.neurons.3.dendritics.1.fc_out.weight", "sections.2.neurons.5.n_threshold", "input.ln.bias"):
        broken = {k: v for k, v in state.items() if k != key and k != key.replace(".neurons.", ".indexer.neurons.")}
        with pytest.raises(CheckpointError, match=f"missing.*{key.replace('.', '[.]')}"):
            from_original(case["config"], broken)


def test_unexpected_key_is_named(split_case):
    case, state, _ = split_case
    for key in ("sections.0.neurons.8.ln.weight", "sections.3.neurons.0.ln.weight", "output.extra.weight"):
        with pytest.raises(CheckpointError, match=f"unexpected.*{key.replace('.', '[.]')}"):
            from_original(case["config"], {**state, key: torch.zeros(16)})


def test_misshaped_key_is_named(split_case):
    case, state, _ = split_case
    for key in (
        "sections.0.neurons.2.axon.fc_out.weight",
        "sections.1.neurons.0.soma.fc_out.weight",
        "input.wte.weight",
    ):
        bad = torch.zeros(*state[key].shape[:-1], state[key].shape[-1] + 1)
        with pytest.raises(CheckpointError, match=key.replace(".", "[.]")):
            from_original(case["config"], {**state, key: bad})


def test_differing_indexer_alias_is_refused(split_case):
    case, state, _ = split_case
    alias = "sections.0.indexer.neurons.1.ln.weight"
    assert alias in state
    with pytest.raises(CheckpointError, match=alias.replace(".", "[.]")):
        from_original(case["config"], {**state, alias: state[alias] + 1})


def test_checkpoint_without_indexer_aliases_loads(split_case):
    case, state, io = split_case
    primary = {k: v for k, v in state.items() if ".indexer." not in k}
    with torch.no_grad():
        out = from_original(case["config"], primary)(io["inputs"])
    torch.testing.assert_close(out.outputs, io["outputs"], atol=1e-5, rtol=0)


def test_to_original_writes_the_originals_config(make_model):
    config, state = to_original(make_model(n_input="none", n_output="none", n_section="sequential"))
    assert (config["n_input"], config["n_output"], config["n_section"]) == (None, None, "sequential")
    assert "n_routing" not in config  # this project's fields are not the original's
    rebuilt = from_original(config, state)
    assert (rebuilt.config.n_input, rebuilt.config.n_output) == ("none", "none")
    assert not any(k.startswith("input.") or k.startswith("output.") for k in state)


def test_any_model_round_trips_through_the_originals_layout(make_model, tokens):
    model = make_model(n_dendritics=3, n_synapses=2, n_seed=12)
    config, state = to_original(model)
    rebuilt = from_original(config, state)
    for (name, ours), theirs in zip(model.state_dict().items(), rebuilt.state_dict().values()):
        assert torch.equal(ours, theirs), name
    assert "sections.1.neurons.7.synapses.1.ln.weight" in state
    assert "sections.1.indexer.neurons.7.synapses.1.ln.weight" in state
    assert state["sections.0.neurons.1.axon.to_q.weight"].shape == (16, 16)
    assert "sections.0.neurons.2.axon.to_q.weight" not in state  # only the attentive neurons attend
    assert state["sections.0.neurons.3.soma.fc_out.weight"].shape == (1, 16)
    assert state["sections.0.neurons.3.n_threshold"].shape == ()


def test_a_config_larger_than_its_state_dict_is_refused_before_building(split_case):
    """from_original lifts the size limit (the weights are in memory already); a config that cannot be
    the checkpoint's must not make it allocate a model of tens of GB first."""
    case, state, _ = split_case
    huge = {**case["config"], "n_dim": 3072, "n_neurons": 256}
    with pytest.raises(CheckpointError, match="the config needs .* parameters but the state dict holds"):
        from_original(huge, state)
    with pytest.raises(CheckpointError, match="must be a mapping"):
        from_original(case["config"], None)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda v: v.to(torch.complex64), "weights must be real floats"),
        (lambda v: v.to(torch.int64), "weights must be real floats"),
        (lambda v: torch.full_like(v, float("nan")), "NaN or infinite"),
        (lambda v: torch.empty(v.shape, device="meta"), "a meta tensor"),
        (lambda v: v.tolist(), "a list, not a tensor"),
    ],
)
def test_state_dict_values_are_checked_not_cast(split_case, change, message):
    case, state, _ = split_case
    key = "input.ln.weight"
    with pytest.raises(CheckpointError, match=f"{key.replace('.', '[.]')}: .*{message}"):
        from_original(case["config"], {**state, key: change(state[key])})
    with pytest.raises(CheckpointError, match="key 3 is not a string"):
        from_original(case["config"], {**state, 3: state[key]})


def test_to_original_refuses_a_config_changed_after_build(make_model):
    model = make_model()
    model.config.n_seed += 1  # another wiring: the round trip would give other routes
    with pytest.raises(ValueError, match="n_seed was changed"):
        to_original(model)
