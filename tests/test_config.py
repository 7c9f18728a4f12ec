"""GenesisConfig: bad combinations are refused naming the field, before any tensor exists; presets."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode
from transformers import AutoConfig, AutoModel

from genesis import PRESETS, ConfigError, Genesis, GenesisConfig, SizeError, check_size, estimate_size, preset
from genesis.compat import config_from_original
from genesis.configuration import FIELDS, parameter_breakdown

TINY = dict(n_dim=32, n_attentive_neuron_heads=4, n_vocab_size=64, n_pos_size=16, n_neurons=6, n_neighbors=3)


class TorchCalls(TorchFunctionMode):
    """Records every torch function called while active (tensor creation included)."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


# (overrides, field the error must name, text the message must contain: the allowed range)
INVALID = [
    (dict(n_dim=33), "n_dim", "divisible by n_sections=2"),
    (dict(n_dim=30, n_sections=4, n_attentive_neuron_heads=1), "n_dim", "divisible by n_sections=4"),
    (dict(n_dim=32, n_attentive_neuron_heads=3), "n_attentive_neuron_heads", "divide the section width 16"),
    (dict(n_section="sequential", n_attentive_neuron_heads=5), "n_attentive_neuron_heads", "width 32"),
    (dict(n_attentive_neurons=7), "n_attentive_neurons", "[0, n_neurons=6]"),
    (dict(n_neighbors=6), "n_neighbors", "[0, n_neurons-1=5]"),
    (dict(n_neurons=1, n_attentive_neurons=0, n_neighbors=1), "n_neighbors", "[0, n_neurons-1=0]"),
    (dict(n_dim=0), "n_dim", "[1, "),
    (dict(n_dim=-32), "n_dim", "[1, "),
    (dict(n_sections=0), "n_sections", "[1, "),
    (dict(n_neurons=0, n_attentive_neurons=0, n_neighbors=0), "n_neurons", "[1, "),
    (dict(n_attentive_neurons=-1), "n_attentive_neurons", "[0, "),
    (dict(n_attentive_neuron_heads=0), "n_attentive_neuron_heads", "[1, "),
    (dict(n_dendritics=-1), "n_dendritics", "[0, "),
    (dict(n_synapses=-2), "n_synapses", "[0, "),
    (dict(n_vocab_size=0), "n_vocab_size", "[1, "),
    (dict(n_pos_size=0), "n_pos_size", "[1, "),
    (dict(n_neighbors=-1), "n_neighbors", "[0, "),
    (dict(n_outputs=0), "n_outputs", "[1, "),
    (dict(n_dim=10**9), "n_dim", "[1, 16384]"),
    (dict(n_input="tokens"), "n_input", "'reading', 'bridge', 'none'"),
    (dict(n_output="lm"), "n_output", "'causal_lm', 'sequence_classifier', 'bridge', 'none'"),
    (dict(n_section="parallel"), "n_section", "'split', 'sequential'"),
    (dict(n_routing="per-sample"), "n_routing", "'batch', 'sample'"),
    (dict(n_dim="32"), "n_dim", "integer"),
    (dict(n_dim=32.0), "n_dim", "integer"),
    (dict(n_neurons=True), "n_neurons", "integer"),
    (dict(n_seed="42"), "n_seed", "integer"),
    (dict(n_cross_attention="yes"), "n_cross_attention", "true or false"),
    (dict(n_trainable_routing=1), "n_trainable_routing", "true or false"),
    (dict(n_causal="no"), "n_causal", "null, true or false"),
    (dict(n_cross_attention=True, n_attentive_neurons=0), "n_cross_attention", "n_attentive_neurons"),
]


@pytest.mark.parametrize("overrides,field,allowed", INVALID, ids=[f"{f}-{i}" for i, (_, f, _) in enumerate(INVALID)])
def test_invalid_config_names_the_field_before_any_tensor(overrides, field, allowed):
    calls = TorchCalls()
    with calls, pytest.raises(ConfigError) as error:
        GenesisConfig(**{**TINY, **overrides})
    assert error.value.field == field
    assert str(error.value).startswith(f"{field}: ")
    assert allowed in str(error.value)
    assert isinstance(error.value, ValueError)
    assert calls.calls == [], "no torch call may happen before a config is refused"


def test_torch_calls_sees_a_model_being_built():
    calls = TorchCalls()
    with calls:
        Genesis(GenesisConfig(**TINY))
    assert "empty" in calls.calls  # so the empty records above mean nothing was allocated


def test_config_error_from_preset_and_dict():
    with pytest.raises(ConfigError, match="n_dim"):
        preset("app", n_dim=130, n_attentive_neuron_heads=4)
    with pytest.raises(ConfigError, match="preset"):
        preset("nope")
    with pytest.raises(ConfigError, match="n_neighbors"):
        GenesisConfig.from_dict({**TINY, "n_neighbors": 99})
    with pytest.raises(ConfigError, match="n_neuron: is not a Genesis field \\(did you mean n_neurons\\?\\)"):
        GenesisConfig(**TINY, n_neuron=8)  # a typo would otherwise build 16 neurons without a word
    with pytest.raises(ConfigError, match="n_zzzzzz: is not a Genesis field$"):
        GenesisConfig.from_dict({**TINY, "n_zzzzzz": 1})


def test_model_refuses_a_config_made_invalid_after_construction():
    config = GenesisConfig(**TINY)
    config.n_dim = 33  # not divisible by the 2 sections
    calls = TorchCalls()
    with calls, pytest.raises(ConfigError) as error:
        Genesis(config)
    assert error.value.field == "n_dim"
    assert calls.calls == []


def test_oversized_config_is_refused_before_allocating():
    config = preset("original", n_dim=16384, n_neurons=1024, n_neighbors=4)
    calls = TorchCalls()
    with calls, pytest.raises(SizeError, match="parameters") as error:
        Genesis(config)
    assert calls.calls == []
    assert error.value.estimate.total > 10**11


def test_size_limits_can_be_lifted_or_tightened():
    config = preset("tiny")
    with pytest.raises(SizeError, match="parameters"):
        Genesis(config, max_parameters=1000)
    with pytest.raises(SizeError, match="activations"):
        check_size(config, max_activation_bytes=1000)
    assert check_size(config, max_parameters=None, max_activation_bytes=None).total > 0


def test_parameter_breakdown_counts_every_parameter():
    for name in ("tiny", "classifier", "sequential", "app"):
        config = preset(name)
        model = Genesis(config)
        assert sum(parameter_breakdown(config).values()) == sum(p.numel() for p in model.parameters()), name
    for overrides in (dict(n_cross_attention=True), dict(n_input="bridge", n_output="bridge"), dict(n_output="none")):
        config = preset("tiny", **overrides)
        assert estimate_size(config).total == sum(p.numel() for p in Genesis(config).parameters()), overrides


def test_original_preset_has_the_original_defaults():
    config = preset("original")
    assert config.user_dict() == GenesisConfig().user_dict()
    assert (config.n_dim, config.n_sections, config.n_neurons, config.n_attentive_neurons) == (1280, 2, 16, 4)
    assert (config.n_attentive_neuron_heads, config.n_dendritics, config.n_synapses) == (16, 2, 1)
    assert (config.n_vocab_size, config.n_pos_size, config.n_neighbors, config.n_seed) == (50257, 2048, 4, 42)
    assert (config.n_input, config.n_output, config.n_section) == ("reading", "causal_lm", "split")
    assert (config.n_causal, config.n_routing, config.n_trainable_routing) == (None, "batch", False)
    assert config.model_type == "genesis"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_run(name):
    config = preset(name)
    assert isinstance(config, GenesisConfig)
    if name == "original":
        estimate = estimate_size(config)  # too big to build in a unit test; the estimate must still work
        assert estimate.total > 10**8
        return
    model = Genesis(config).eval()
    ids = torch.randint(0, config.n_vocab_size, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(ids)
    if config.n_output == "causal_lm":
        assert out.logits.shape == (2, 5, config.n_vocab_size)
    else:
        assert out.outputs.shape == (2, config.n_outputs)
    assert torch.isfinite(out.outputs).all()


def test_app_preset_is_small_with_a_byte_vocabulary():
    config = preset("app")
    assert config.n_vocab_size == 258
    assert estimate_size(config).total < 5_000_000


def test_preset_overrides_and_user_dict():
    config = preset("tiny", n_seed=7, n_routing="sample")
    assert (config.n_seed, config.n_routing, config.n_dim) == (7, "sample", 32)
    assert list(config.user_dict()) == list(FIELDS)
    assert GenesisConfig(**config.user_dict()).user_dict() == config.user_dict()


def test_derived_values():
    split = GenesisConfig(**{**TINY, "n_sections": 4, "n_attentive_neuron_heads": 2})
    assert split.inner_dim == 8
    sequential = GenesisConfig(**{**TINY, "n_section": "sequential"})
    assert sequential.inner_dim == 32
    assert GenesisConfig(**TINY).is_causal
    assert not GenesisConfig(**{**TINY, "n_output": "sequence_classifier"}).is_causal
    assert GenesisConfig(**{**TINY, "n_output": "sequence_classifier", "n_causal": True}).is_causal
    assert not GenesisConfig(**{**TINY, "n_causal": False}).is_causal
    assert GenesisConfig(**TINY).use_cache is False


def test_no_attentive_neurons_needs_no_head_divisibility():
    config = GenesisConfig(**{**TINY, "n_attentive_neurons": 0, "n_attentive_neuron_heads": 5})
    assert config.n_attentive_neurons == 0


def test_none_modes_are_the_originals_json_only():
    """GenesisConfig takes "none"; the original's null is translated by compat (and io)."""
    with pytest.raises(ConfigError, match="n_input"):
        GenesisConfig(**{**TINY, "n_input": None})
    config = config_from_original({**TINY, "n_input": None, "n_output": None})
    assert (config.n_input, config.n_output) == ("none", "none")


def test_class_labels_must_agree_with_n_outputs(tmp_path):
    """transformers' num_labels / id2label used to be overridden by n_outputs without a word (names
    dropped), or, given to from_pretrained, left a config whose labels disagreed with its head."""
    classifier = dict(TINY, n_output="sequence_classifier")
    for given in (dict(num_labels=3), dict(id2label={0: "a", 1: "b", 2: "c"})):
        with pytest.raises(ConfigError, match="num_labels: is 3 .* n_outputs=1: set n_outputs=3"):
            GenesisConfig(**classifier, **given)
    named = GenesisConfig(**classifier, n_outputs=3, id2label={"0": "a", "1": "b", "2": "c"})
    assert named.id2label == {0: "a", 1: "b", 2: "c"} and named.num_labels == 3
    assert GenesisConfig(**classifier, n_outputs=3).num_labels == 3  # transformers' default of 2 follows
    # A language model's saved placeholder labels say nothing: it can become a classifier of any width.
    lm = GenesisConfig(**TINY).to_dict()
    assert GenesisConfig.from_dict({**lm, "n_output": "sequence_classifier", "n_outputs": 5}).num_labels == 5
    Genesis(GenesisConfig(**classifier, n_outputs=2)).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="num_labels: is 3 .*n_outputs=2"):
        Genesis.from_pretrained(tmp_path, num_labels=3)
    # n_outputs changed after the config was made: placeholder names follow, given names must agree.
    wider = AutoConfig.from_pretrained(tmp_path, n_outputs=4)
    assert AutoModel.from_config(wider).config.num_labels == 4
    named = GenesisConfig(**classifier, n_outputs=2, id2label={0: "no", 1: "yes"})
    named.n_outputs = 3
    with pytest.raises(ConfigError, match="num_labels: is 2 .* n_outputs=3"):
        Genesis(named)


def test_tied_embeddings_are_refused_not_ignored():
    with pytest.raises(ConfigError, match="tie_word_embeddings: must be false"):
        GenesisConfig(**TINY, tie_word_embeddings=True)
    assert GenesisConfig(**TINY).tie_word_embeddings is False
