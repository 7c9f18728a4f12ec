"""The size guard: configs over a budget are refused before anything is allocated, with the
estimate in the message; the caller can lift the limits; the app explains and suggests a config
that fits. (That the parameter estimate is exact is a property test in test_properties.py.)
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import genesis
from genesis import Genesis, GenesisConfig
from genesis.configuration import SizeError, check_size, estimate_size, human, smaller_config
from tests.test_properties import SETTINGS, any_size_configs

APP_LIMITS = dict(max_parameters=30_000_000, max_activation_bytes=2 * 2**30, batch_size=8, seq_len=256)
# About 1.1 trillion parameters: allocating it would fail (or take the machine down), so getting
# a SizeError back at all shows the guard ran first.
ENORMOUS = dict(n_dim=16384, n_section="sequential", n_sections=1, n_neurons=1024, n_attentive_neurons=0, n_neighbors=3)


def test_an_enormous_config_is_refused_before_allocation():
    config = GenesisConfig(**ENORMOUS)
    estimate = estimate_size(config)
    assert estimate.total > 10**12
    with pytest.raises(SizeError) as raised:
        Genesis(config)
    assert f"config has {human(estimate.total)} parameters, over the limit of 400M" in str(raised.value)
    assert raised.value.estimate.total == estimate.total


def test_long_positions_are_refused_for_their_activations():
    config = GenesisConfig(n_dim=64, n_sections=2, n_neurons=8, n_attentive_neurons=2, n_attentive_neuron_heads=4,
                           n_vocab_size=258, n_pos_size=1_000_000, n_neighbors=3)  # fmt: skip
    with pytest.raises(SizeError, match=r"one forward at batch 1 needs about [\d.]+[KMGT]B of activations"):
        Genesis(config)


def test_the_caller_sets_or_lifts_the_limits():
    tiny = genesis.preset("tiny")
    total = estimate_size(tiny).total
    with pytest.raises(SizeError, match=f"config has {human(total)} parameters, over the limit of 1K;"):
        Genesis(tiny, max_parameters=1000)
    with pytest.raises(SizeError, match="of activations, over the limit of 1KB;"):
        Genesis(tiny, max_activation_bytes=1000)
    over = GenesisConfig(n_dim=8192, n_section="sequential", n_sections=1, n_neurons=16, n_attentive_neurons=2,
                         n_attentive_neuron_heads=8, n_vocab_size=258, n_pos_size=64, n_neighbors=3)  # fmt: skip
    assert estimate_size(over).total > 400_000_000
    with pytest.raises(SizeError):
        Genesis(over)
    with torch.device("meta"):  # lifted: it builds (on the meta device, which allocates nothing)
        model = Genesis(over, max_parameters=None, max_activation_bytes=None)
    assert sum(p.numel() for p in model.parameters()) == estimate_size(over).total


def test_the_original_defaults_fit_the_library_budget():
    with torch.device("meta"):
        model = Genesis(genesis.preset("original"))
    assert sum(p.numel() for p in model.parameters()) == estimate_size(model.config).total


def test_the_app_explains_and_names_the_estimate():
    from pages.common import validate_fields

    fields = genesis.preset("app", n_dim=2048, n_pos_size=4096).user_dict()
    config, message = validate_fields(fields)
    assert config is None
    total = estimate_size(GenesisConfig(**fields)).total
    assert message.startswith("Too large for this app: ")
    assert f"config has {human(total)} parameters, over the limit of 30M" in message
    assert "smaller" in message
    suggested = dict(kv.split("=") for kv in message.split("fits: ")[1].rstrip(".").split(", "))
    assert validate_fields({**fields, **{k: int(v) for k, v in suggested.items()}})[1] is None


@settings(max_examples=200, **SETTINGS)
@given(any_size_configs(), st.sampled_from([APP_LIMITS, dict(batch_size=1)]))
def test_smaller_config_fits_and_only_shrinks(fields, limits):
    config = GenesisConfig(**fields)
    smaller = smaller_config(config, **limits)
    if smaller is None:  # only when even the untouchable part (the vocabulary) is over
        tiny = GenesisConfig(**{**fields, "n_dim": 1, "n_sections": 1, "n_neurons": 1, "n_pos_size": 1,
                                "n_attentive_neurons": 1, "n_attentive_neuron_heads": 1, "n_neighbors": 0})  # fmt: skip
        with pytest.raises(SizeError):
            check_size(tiny, **{**limits, "seq_len": 1})
        return
    seq_len = limits.get("seq_len")
    check_size(smaller, **{**limits, "seq_len": None if seq_len is None else min(seq_len, smaller.n_pos_size)})
    before, after = config.user_dict(), smaller.user_dict()
    for name in ("n_dim", "n_neurons", "n_sections", "n_pos_size", "n_attentive_neuron_heads", "n_neighbors"):
        assert after[name] <= before[name]
    unchanged = set(before) - {"n_dim", "n_neurons", "n_sections", "n_pos_size", "n_attentive_neuron_heads",
                               "n_neighbors", "n_attentive_neurons"}  # fmt: skip
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    try:
        check_size(config, **limits)
        assert smaller.user_dict() == before  # a config that fits is returned as it is
    except SizeError:
        pass


def test_the_app_refuses_wiring_too_large_to_draw():
    from pages.common import APP_MAX_ARROWS, validate_fields

    # Small in parameters and activations (short positions), but 16,384 arrows per section to draw.
    fields = genesis.preset("app", n_dim=16, n_attentive_neuron_heads=2, n_pos_size=16, n_neurons=1024).user_dict()
    assert fields["n_neurons"] * 16 > APP_MAX_ARROWS >= fields["n_neurons"] * 8
    config, message = validate_fields({**fields, "n_neighbors": 16})
    assert config is None and "16,384 arrows" in message and "n_neurons × n_neighbors" in message
    assert validate_fields({**fields, "n_neighbors": 8}) == (GenesisConfig(**{**fields, "n_neighbors": 8}), None)


@pytest.mark.parametrize(
    "changes",
    [
        dict(n_neurons=1024, n_neighbors=64),  # too many parameters and too many arrows
        dict(n_dim=16, n_attentive_neuron_heads=2, n_pos_size=16, n_neurons=1024, n_neighbors=16),  # arrows only
    ],
)
def test_the_apps_suggested_smaller_config_can_be_built(changes):
    """The library's shrinking knows parameters and activations, not the app's limit on arrows: the
    suggestion for n_neurons=1024, n_neighbors=64 was itself refused."""
    from pages.common import fitting_config, validate_fields

    fields = genesis.preset("app", **changes).user_dict()
    assert validate_fields(fields)[0] is None
    smaller = fitting_config(GenesisConfig(**fields))
    assert smaller is not None and validate_fields(smaller.user_dict()) == (smaller, None)
    assert "A smaller config that fits" in validate_fields(fields)[1]


def test_size_estimate_refuses_a_batch_or_length_below_one():
    for bad in (dict(batch_size=-5), dict(batch_size=0), dict(seq_len=0)):  # a negative estimate passed every limit
        with pytest.raises(ValueError, match="must be integers >= 1"):
            estimate_size(genesis.preset("tiny"), **bad)
