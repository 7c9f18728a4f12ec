"""Tiny-config fixtures shared by the library tests.

Models are perturbed away from their initial norms and thresholds (as the golden vectors are), and
their somas sharpened, so routes branch: some samples pass a hop and others stop, which is where
routing bugs show.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from genesis import Genesis, GenesisConfig

SHARED = Path(__file__).resolve().parents[2] / "shared"

TINY = dict(
    n_dim=32,
    n_sections=2,
    n_neurons=8,
    n_attentive_neurons=2,
    n_attentive_neuron_heads=2,
    n_vocab_size=258,
    n_pos_size=32,
    n_neighbors=4,
    n_seed=1,
)


def tiny_config(**overrides) -> GenesisConfig:
    return GenesisConfig(**{**TINY, **overrides})


@torch.no_grad()
def perturb(model: Genesis, seed: int = 0) -> Genesis:
    """Norms in [0.5, 1.5], thresholds in [0.5, 0.54], somas 8x sharper: routes that branch."""
    g = torch.Generator().manual_seed(seed)
    for section in model.sections:
        section.threshold.uniform_(0.5, 0.54, generator=g)
        section.norm.uniform_(0.5, 1.5, generator=g)
        section.dendrites.norm.uniform_(0.5, 1.5, generator=g)
        section.soma.weight.mul_(8)
    return model


def build_model(config: GenesisConfig | None = None, seed: int = 0, **overrides) -> Genesis:
    """A perturbed model in eval mode (no dropout), from `config` or the tiny config with overrides."""
    return perturb(Genesis(config or tiny_config(**overrides)), seed).eval()


def random_tokens(batch: int, length: int, seed: int = 0, vocab: int = 256) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def random_floats(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def make_config():
    return tiny_config


@pytest.fixture
def make_model():
    return build_model


@pytest.fixture
def tokens():
    return random_tokens


@pytest.fixture
def floats():
    return random_floats


@pytest.fixture(scope="session")
def lm_model() -> Genesis:
    """A tiny causal LM shared by many tests: never mutate it."""
    return build_model()


@pytest.fixture(scope="session")
def classifier_model() -> Genesis:
    """A tiny 3-way classifier, sequential sections, shared: never mutate it."""
    return build_model(n_output="sequence_classifier", n_outputs=3, n_section="sequential", seed=1)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return SHARED / "golden"


def random_labels(config, batch: int, length: int, g: torch.Generator):
    """Labels of the right kind for the config's output part (None for no output part)."""
    return {
        "causal_lm": lambda: torch.randint(0, config.n_vocab_size, (batch, length), generator=g),
        "sequence_classifier": lambda: (
            torch.randint(0, 2, (batch,), generator=g).float()
            if config.n_outputs == 1
            else torch.randint(0, config.n_outputs, (batch,), generator=g)
        ),
        "bridge": lambda: torch.randn(batch, length, config.n_dim, generator=g),
        "none": lambda: None,
    }[config.n_output]()
