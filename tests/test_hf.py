"""Hugging Face conventions: safetensors save/load, Auto* registration, generate()."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, pipeline

from genesis import (
    ConfigError,
    Genesis,
    GenesisConfig,
    GenesisForCausalLM,
    GenesisForSequenceClassification,
    byte_tokenizer,
)

ROOT = Path(__file__).resolve().parents[1]

EOS, PAD = 256, 257


def same_run(a: Genesis, b: Genesis, inputs: torch.Tensor, **kwargs) -> None:
    """Outputs equal (to 1e-5) and routes identical."""
    with torch.no_grad():
        out_a, out_b = a(inputs, trace=True, **kwargs), b(inputs, trace=True, **kwargs)
    torch.testing.assert_close(out_b.outputs, out_a.outputs, atol=1e-5, rtol=0)
    assert out_b.neuron_activation_count == out_a.neuron_activation_count
    assert out_b.trace.sample_routes() == out_a.trace.sample_routes()
    assert [s.alive for s in out_b.trace.sections] == [s.alive for s in out_a.trace.sections]


@pytest.mark.parametrize(
    "overrides",
    [
        dict(),
        dict(n_routing="sample"),
        dict(n_section="sequential", n_output="sequence_classifier", n_outputs=2),
        dict(n_trainable_routing=True, n_seed=9),
    ],
    ids=["lm", "sample-routing", "classifier", "trainable"],
)
def test_save_and_load_give_the_same_outputs_and_routes(tmp_path, make_model, tokens, overrides):
    model = make_model(**overrides)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "genesis"
    assert {k: saved[k] for k in overrides} == overrides
    loaded = Genesis.from_pretrained(tmp_path).eval()
    assert loaded.config.user_dict() == model.config.user_dict()
    assert loaded.neighbor_lists() == model.neighbor_lists()
    for original, reloaded in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(original, reloaded)
    same_run(model, loaded, tokens(5, 9, seed=3))
    same_run(model, loaded, tokens(1, 4, seed=4))


def test_a_loaded_model_owns_its_weights_and_computes_as_the_saved_one(tmp_path, make_model, tokens):
    model = make_model(n_routing="sample")
    model.save_pretrained(tmp_path)
    loaded = Genesis.from_pretrained(tmp_path).eval()
    assert all(t.data_ptr() % 64 == 0 for t in [*loaded.parameters(), *loaded.buffers()])
    x = tokens(6, 12, seed=4)

    def voltages(m):
        trace = m(x, trace=True).trace
        return [c.voltages for per in trace.samples for s in per for h in s.hops for c in h.candidates]

    assert voltages(loaded) == voltages(model)  # bit for bit: they were 1 ulp apart on mapped weights
    # The file rewritten in place under the loaded model: it used to die of SIGBUS (its weights
    # were the file's pages). In a child process, so a regression cannot take pytest down.
    script = (
        "import sys, torch; from genesis import Genesis\n"
        "m = Genesis.from_pretrained(sys.argv[1]).eval(); x = torch.zeros(1, 4, dtype=torch.long)\n"
        "before = m(x).logits\n"
        "open(sys.argv[1] + '/model.safetensors', 'r+b').truncate(0)\n"
        "print(torch.equal(before, m(x).logits))\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert child.returncode == 0 and child.stdout.strip() == "True", (child.returncode, child.stderr[-500:])


def test_loaded_model_keeps_its_buffers(tmp_path, make_model):
    """Non-persistent buffers (the wiring table) are rebuilt, not left as uninitialised memory."""
    model = make_model(n_routing="sample")
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    for ours, theirs in zip(model.buffers(), loaded.buffers()):
        assert torch.equal(ours, theirs)


def test_auto_classes(tmp_path, make_model, tokens):
    model = make_model()
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is GenesisConfig
    assert config.user_dict() == model.config.user_dict()
    for auto, made in ((AutoModel, Genesis), (AutoModelForCausalLM, GenesisForCausalLM)):
        loaded = auto.from_pretrained(tmp_path)
        assert type(loaded) is made
        same_run(model, loaded.eval(), tokens(3, 6))
        assert type(auto.from_config(config)) is made


def test_each_head_auto_class_refuses_the_other_head(tmp_path, make_model, tokens):
    """AutoModelForCausalLM used to hand back a classifier (nothing to generate from), and a
    causal LM would have come out of AutoModelForSequenceClassification."""
    classifier = make_model(n_output="sequence_classifier", n_outputs=3)
    classifier.save_pretrained(tmp_path / "classifier")
    make_model().save_pretrained(tmp_path / "lm")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "classifier")
    assert type(loaded) is GenesisForSequenceClassification
    same_run(classifier, loaded.eval(), tokens(3, 6))
    for auto, folder, head in (
        (AutoModelForCausalLM, "classifier", "'sequence_classifier'"),
        (AutoModelForSequenceClassification, "lm", "'causal_lm'"),
    ):
        with pytest.raises(ConfigError, match=f"n_output: is {head}, but {auto.__name__} makes .*AutoModel or Genesis"):
            auto.from_pretrained(tmp_path / folder)
        with pytest.raises(ConfigError, match=f"but {auto.__name__} makes"):
            auto.from_config(AutoConfig.from_pretrained(tmp_path / folder))
    # The generic classes still take either head, and a head class's save loads everywhere.
    assert type(AutoModel.from_pretrained(tmp_path / "classifier")) is Genesis
    loaded.save_pretrained(tmp_path / "again")
    same_run(classifier, Genesis.from_pretrained(tmp_path / "again").eval(), tokens(2, 5))


def test_from_pretrained_names_a_shape_field_given_to_it(tmp_path, make_model):
    """transformers raised its own RuntimeError ("look at the above report") before our check."""
    make_model().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"does not fit the config: mis-shaped .*\(n_dim given here: the saved"):
        Genesis.from_pretrained(tmp_path, n_dim=64)


def test_from_pretrained_refuses_an_invalid_config(tmp_path, make_model):
    make_model().save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**saved, "n_neighbors": 50}))
    with pytest.raises(ValueError, match="n_neighbors"):
        Genesis.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("drop", "does not fit the config: missing sections.0.threshold"),
        ("nan", "sections.0.threshold contains NaN or infinite values"),
        ("extra", "does not fit the config: unexpected stray.weight"),
        ("int", "tensor sections.0.threshold has dtype I32; weights must be floats"),  # was cast and run
    ],
)
def test_from_pretrained_refuses_incomplete_or_broken_weights(tmp_path, make_model, damage, message):
    """transformers only logs these; a missing tensor would be left as uninitialised memory."""
    make_model().save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    if damage == "drop":
        del tensors["sections.0.threshold"]
    elif damage == "nan":
        tensors["sections.0.threshold"][0] = float("nan")
    elif damage == "int":
        tensors["sections.0.threshold"] = tensors["sections.0.threshold"].round().int()
    else:
        tensors["stray.weight"] = torch.zeros(2)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    for loader in (Genesis.from_pretrained, AutoModelForCausalLM.from_pretrained):
        with pytest.raises(ValueError, match=message):
            loader(tmp_path)


def test_a_multiclass_classifier_works_in_a_text_classification_pipeline(tmp_path, make_model):
    """The pipeline names labels from config.num_labels, which follows n_outputs (it stayed 2: KeyError)."""
    make_model(n_output="sequence_classifier", n_outputs=3).save_pretrained(tmp_path)
    model = Genesis.from_pretrained(tmp_path)
    assert model.config.num_labels == 3
    classify = pipeline("text-classification", model=model, tokenizer=byte_tokenizer())
    scores = classify("(()())", top_k=None)
    assert sorted(s["label"] for s in scores) == ["LABEL_0", "LABEL_1", "LABEL_2"]
    with torch.no_grad():
        expected = model(torch.tensor([byte_tokenizer()("(()())").input_ids])).outputs[0]
    assert sorted(s["score"] for s in scores) == pytest.approx(sorted(expected.tolist()), abs=1e-6)


def test_from_pretrained_keeps_its_loading_info(tmp_path, make_model):
    make_model().save_pretrained(tmp_path)
    model, info = Genesis.from_pretrained(tmp_path, output_loading_info=True)
    assert type(model) is Genesis and not info["missing_keys"] and not info["unexpected_keys"]


def test_config_routing_set_after_build_takes_effect_and_saves_faithfully(tmp_path, make_model, tokens):
    model, tokens = make_model(), tokens(4, 10, seed=5)
    model.config.n_routing = "sample"  # as users do with Hugging Face configs
    with torch.no_grad():
        together = model(tokens, trace=True)
        alone = [model(tokens[i : i + 1], trace=True).trace.sample_routes()[0] for i in range(len(tokens))]
        assert together.trace.mode == "sample" and together.trace.sample_routes() == alone
        model.save_pretrained(tmp_path)
        assert torch.equal(Genesis.from_pretrained(tmp_path).eval()(tokens).logits, together.logits)


def test_a_structural_config_change_after_build_is_refused(tmp_path, make_model, tokens):
    model, tokens = make_model(), tokens(2, 6)
    model.config.n_seed += 1  # the wiring was built from the old seed: a saved config would rewire it
    with pytest.raises(ValueError, match="config.n_seed was changed .* build a new one"):
        model(tokens)
    with pytest.raises(ValueError, match="config.n_seed was changed"):
        model.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize(
    "field, bad, message",
    [("n_trainable_routing", 1, "must be true or false, got 1"), ("n_causal", "yes", "must be null, true or false")],
)
def test_a_per_pass_field_set_to_a_bad_value_is_refused_before_it_runs_or_saves(
    tmp_path, make_model, tokens, field, bad, message
):
    model, tokens = make_model(), tokens(2, 6)
    setattr(model.config, field, bad)  # used to run, save, and then fail to load
    with pytest.raises(ConfigError, match=f"{field}: {message}"):
        model(tokens)
    with pytest.raises(ConfigError, match=field):
        model.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_a_misspelled_keyword_is_named_with_the_field_it_resembles(tmp_path, make_model):
    make_model().save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="n_routng: .*did you mean n_routing"):
        Genesis.from_pretrained(tmp_path, n_routng="sample")  # used to be a TypeError from check_size
    assert Genesis.from_pretrained(tmp_path, n_routing="sample").config.n_routing == "sample"
    with pytest.raises(ConfigError, match="n_routing: is a config field"):
        Genesis(make_model().config, n_routing="sample")


def test_output_hidden_states_gives_what_the_head_reads(make_model, tokens):
    model, x = make_model(), tokens(2, 7)
    assert model(x).hidden_states is None
    out = model(x, output_hidden_states=True)
    (hidden,) = out.hidden_states  # one entry: routed neurons are not a stack of layers
    assert hidden.shape == (2, 7, model.config.n_dim)
    assert torch.equal(model.output(hidden, None)[1], out.logits)  # the head's input, unchanged by it
    model.config.output_hidden_states = True  # the config's setting, as in transformers
    assert model(x).hidden_states is not None


def test_resize_token_embeddings_grows_the_vocabulary_and_keeps_the_old_tokens(tmp_path, make_model, tokens):
    model, x = make_model(), tokens(2, 8)
    before = model(x).logits
    model.resize_token_embeddings(300, mean_resizing=False)  # used to fail: no get_input_embeddings
    assert model.config.n_vocab_size == 300 and model.output.lm_head.bias.shape == (300,)
    after = model(x).logits
    assert after.shape[-1] == 300 and torch.equal(after[..., :258], before)  # old tokens score as before
    assert model(torch.tensor([[299, 1]])).logits.shape == (1, 2, 300)  # new ids are read
    model.save_pretrained(tmp_path)
    assert torch.equal(Genesis.from_pretrained(tmp_path).eval()(x).logits, after)
    floats = make_model(n_input="bridge")
    with pytest.raises(NotImplementedError, match="no token embeddings"):
        floats.resize_token_embeddings(300)


# -- generate -------------------------------------------------------------------------------------


def greedy_by_hand(model: Genesis, ids: torch.Tensor, steps: int) -> torch.Tensor:
    with torch.no_grad():
        for _ in range(steps):
            next_id = model(ids).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
    return ids


def test_greedy_generate_is_argmax_of_forward(lm_model, tokens):
    prompt = tokens(2, 5, seed=1)
    out = lm_model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=PAD)
    assert out.shape == (2, 11)
    assert torch.equal(out[:, :5], prompt)
    assert torch.equal(out, greedy_by_hand(lm_model, prompt, 6))


def test_generate_refuses_a_classifier_and_ignores_use_cache(make_model, lm_model, tokens):
    ids = tokens(1, 4)
    with pytest.raises(ValueError, match="n_output='causal_lm'"):
        make_model(n_output="sequence_classifier", n_outputs=2).generate(ids, max_new_tokens=2)
    greedy = dict(max_new_tokens=3, do_sample=False)
    assert torch.equal(lm_model.generate(ids, use_cache=True, **greedy), lm_model.generate(ids, **greedy))


def test_generate_with_attention_mask(lm_model, tokens):
    prompt = tokens(2, 5, seed=2)
    mask = torch.ones_like(prompt)
    out = lm_model.generate(prompt, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=PAD)
    assert torch.equal(out, greedy_by_hand(lm_model, prompt, 4))


def test_generate_warns_when_the_mask_pads(lm_model, tokens):
    """Padding is not neutral in Genesis (somas average over pads too): say so rather than differ silently."""
    prompt = tokens(2, 5, seed=2)
    mask = torch.ones_like(prompt)
    mask[0, :2] = 0  # left padding of the first prompt
    with pytest.warns(UserWarning, match="padding changes routes and outputs"):
        lm_model.generate(prompt, attention_mask=mask, max_new_tokens=2, do_sample=False, pad_token_id=PAD)
    alone = lm_model(prompt[:1, 2:]).logits[0, -1]
    padded = lm_model(prompt, attention_mask=mask).logits[0, -1]
    assert not torch.allclose(alone, padded)  # what the warning is about


def test_generate_warns_when_transformers_infers_a_padding_mask(lm_model, tokens):
    prompt = tokens(2, 5, seed=2)
    prompt[0, :2] = PAD  # no attention_mask: transformers builds one from the pad id
    with pytest.warns(UserWarning, match="padding changes routes and outputs"):
        lm_model.generate(prompt, max_new_tokens=1, do_sample=False, pad_token_id=PAD)


def test_generate_refuses_a_prompt_that_is_not_a_batch(lm_model, tokens):
    with pytest.raises(
        ValueError, match=r"\(batch, length\) tensor of token ids, got shape \(5,\) \(one prompt: ids\[None\]\)"
    ):
        lm_model.generate(tokens(1, 5)[0], max_new_tokens=1)  # used to be an IndexError inside transformers


def test_eos_stops_generation(lm_model, tokens):
    prompt = tokens(1, 5, seed=1)
    free = lm_model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=PAD)[0, 5:].tolist()
    # Make the third generated token the end-of-text token: generation must stop right there.
    eos = free[2]
    stop_at = free.index(eos)
    out = lm_model.generate(prompt, max_new_tokens=8, do_sample=False, eos_token_id=eos, pad_token_id=PAD)
    assert out[0, 5:].tolist() == free[: stop_at + 1]
    assert out.shape[1] == 5 + stop_at + 1 < 5 + 8


def test_eos_pads_finished_rows_of_a_batch(make_model, tokens):
    # Per-sample routing, so a finished row's padding cannot change the other row's route.
    model = make_model(n_routing="sample")
    prompt = tokens(2, 5, seed=1)
    free = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=PAD)[:, 5:]
    row0, row1 = free[0].tolist(), free[1].tolist()
    eos = next(t for t in row0 if t not in row1)  # ends row 0, never row 1
    stop_at = row0.index(eos)
    out = model.generate(prompt, max_new_tokens=8, do_sample=False, eos_token_id=eos, pad_token_id=PAD)
    assert out.shape == (2, 5 + 8)
    assert out[0, 5:].tolist() == row0[: stop_at + 1] + [PAD] * (8 - stop_at - 1)
    assert out[1, 5:].tolist() == row1


def test_default_eos_of_the_byte_vocabulary_stops(tmp_path, make_model, tokens):
    model = make_model()
    with torch.no_grad():
        model.output.lm_head.bias[EOS] = 100.0  # the model now always says end-of-text
    out = model.generate(tokens(1, 4), max_new_tokens=10, do_sample=False, eos_token_id=EOS, pad_token_id=PAD)
    assert out[0, 4:].tolist() == [EOS]


def test_sampling_is_seeded_and_in_vocabulary(lm_model, tokens):
    prompt = tokens(3, 4, seed=5)
    kwargs = dict(max_new_tokens=6, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, pad_token_id=PAD)
    torch.manual_seed(0)
    first = lm_model.generate(prompt, **kwargs)
    torch.manual_seed(0)
    again = lm_model.generate(prompt, **kwargs)
    assert torch.equal(first, again)
    assert first.shape == (3, 10)
    assert 0 <= int(first.min()) and int(first.max()) < lm_model.config.n_vocab_size
    greedy = lm_model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=PAD)
    assert not torch.equal(first, greedy), "sampling at temperature 1.5 should leave the greedy path"


@pytest.mark.parametrize(
    "kwargs",
    [dict(top_k=1), dict(top_p=1e-6), dict(temperature=1e-4), dict(top_k=1, top_p=0.5, temperature=3.0)],
    ids=["top_k=1", "top_p~0", "temperature~0", "combined"],
)
def test_sampling_options_narrow_to_greedy(lm_model, tokens, kwargs):
    prompt = tokens(2, 5, seed=6)
    greedy = lm_model.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=PAD)
    torch.manual_seed(1)
    sampled = lm_model.generate(prompt, max_new_tokens=5, do_sample=True, pad_token_id=PAD, **kwargs)
    assert torch.equal(sampled, greedy)


def test_top_k_limits_the_choice(make_model, tokens):
    """With top_k=2 every sampled token is one of the two most likely at its step."""
    model = make_model(n_seed=4)
    prompt = tokens(4, 3, seed=7)
    torch.manual_seed(0)
    out = model.generate(prompt, max_new_tokens=5, do_sample=True, top_k=2, temperature=5.0, pad_token_id=PAD)
    chose_second = []
    with torch.no_grad():
        for t in range(3, 8):  # the logits that chose token t: the model run on the text so far
            logits = model(out[:, :t]).logits[:, -1]
            assert (logits.topk(2, dim=-1).indices == out[:, t, None]).any(-1).all()
            chose_second.append(bool((logits.argmax(-1) != out[:, t]).any()))
    assert any(chose_second), "at temperature 5 some step should take the second choice"


def test_generate_windows_long_inputs(make_model, tokens):
    model = make_model(n_pos_size=8)
    out = model.generate(tokens(1, 8), max_new_tokens=3, do_sample=False, pad_token_id=PAD)
    assert out.shape == (1, 11)
    with torch.no_grad():
        last = model(out[:, -9:-1]).logits[:, -1].argmax(-1)
    assert int(last) == int(out[0, -1])


def test_token_ids_that_would_not_load_again_are_refused_at_once(make_model):
    for field, value in (("eos_token_id", 999), ("pad_token_id", -1), ("eos_token_id", "256")):
        with pytest.raises(ConfigError, match=f"{field}: must be null or a token id in \\[0, 257\\]"):
            GenesisConfig(**{**make_model().config.user_dict(), field: value})  # used to save, then not load
    model = make_model(eos_token_id=256, pad_token_id=257)
    for size, field in ((200, "eos_token_id"), (0, "n_vocab_size"), (2_000_000, "n_vocab_size")):
        with pytest.raises(ConfigError, match=field):
            model.resize_token_embeddings(size)
        assert model.config.n_vocab_size == 258 and model.input.wte.num_embeddings == 258  # nothing changed
    assert model(torch.tensor([[1, 2]])).logits.shape == (1, 2, 258)


def test_generate_collects_hidden_states_when_asked(lm_model, tokens):
    out = lm_model.generate(
        tokens(1, 4), max_new_tokens=2, do_sample=False, pad_token_id=PAD, output_hidden_states=True,
        return_dict_in_generate=True,
    )  # fmt: skip
    assert len(out.hidden_states) == 2 and out.hidden_states[0][0].shape[-1] == lm_model.config.n_dim
