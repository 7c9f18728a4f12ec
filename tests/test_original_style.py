"""The benchmark's original-style stand-in (bench/original_style.py) computes what the original does.

It is timed against the fast path, so it must be an honest rebuild: it loads the original's own
checkpoints (the golden LM cases) with strict=True and reproduces their outputs and activation
counts, and it agrees with both of this project's implementations on branching routes.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_golden import CASES, load_case

from bench.original_style import OriginalStyle, rebuild
from genesis import Genesis
from genesis.compat import to_original

CONFIGS = {p: json.loads(p.read_text())["config"] for p in CASES}  # the JSON only: no weights at collection
LM_CASES = [p for p in CASES if CONFIGS[p]["n_output"] == "causal_lm"]


@pytest.mark.parametrize("path", LM_CASES, ids=[p.stem for p in LM_CASES])
def test_stand_in_reproduces_the_golden_lm_cases(path):
    case, state, io = load_case(path)
    model = rebuild(case["config"], state)  # strict: every original key, nothing else
    with torch.no_grad():
        logits, count = model(io["inputs"])
    torch.testing.assert_close(logits, io["outputs"], atol=1e-5, rtol=1e-5)
    assert count == case["neuron_activation_count"]


def test_at_least_one_golden_case_of_each_section_mode():
    modes = {CONFIGS[p]["n_section"] for p in LM_CASES}
    assert {"split", "sequential"} <= modes


@pytest.mark.parametrize("n_section", ["split", "sequential"])
def test_stand_in_agrees_with_both_implementations(make_model, tokens, n_section):
    model = make_model(n_section=n_section)  # perturbed: some samples stop at some hop
    stand_in = rebuild(*to_original(model))
    x = tokens(8, 16)
    with torch.no_grad():
        logits, count = stand_in(x)
        alive = [sum(a) for s in model(x, trace=True).trace.sections for a in s.alive]
        for implementation in ("fast", "reference"):
            out = model(x, implementation=implementation)
            torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=1e-5)
            assert count == out.neuron_activation_count
    assert min(alive) < 8  # the routes did branch, so zeroed rows were exercised


def test_stand_in_refuses_what_it_does_not_cover(make_config):
    config, _ = to_original(Genesis(make_config(n_output="sequence_classifier", n_outputs=2)))
    with pytest.raises(ValueError, match="causal LM"):
        OriginalStyle(config)
