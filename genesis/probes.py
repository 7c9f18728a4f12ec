"""Looking at one input: run it traced, read its outputs, compare its route in a batch and alone,
measure how earlier outputs react to a later token, re-run with one threshold changed, and explain
the pass step by step. What the Home and Run pages show, as plain functions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .configuration import GenesisConfig, placeholder_labels
from .data import EOS_ID, PAD_ID
from .tokenization import TextError, encode_text
from .trace import STOP_ALL_FIRED, STOP_BELOW_THRESHOLD, STOP_NO_NEIGHBORS, RoutingTrace, SectionTrace

if TYPE_CHECKING:  # annotations only: importing probes needs no model code
    from .modeling import Genesis, GenesisOutput

# -- tokens and outputs -------------------------------------------------------------------------

_NAMED_BYTES = {9: "⇥", 10: "⏎", 13: "␍", 32: "␣", EOS_ID: "<eos>", PAD_ID: "<pad>"}


def token_label(token_id: int) -> str:
    """A byte token as something readable: the character, a symbol for whitespace, or \\xNN."""
    if token_id in _NAMED_BYTES:
        return _NAMED_BYTES[token_id]
    if 33 <= token_id < 127:
        return chr(token_id)
    return f"\\x{token_id:02x}" if token_id < 256 else f"<{token_id}>"


def encode_for(config: GenesisConfig, text: str) -> tuple[list[int], str | None]:
    """Byte ids of `text` for a model of this config, and a note when it was cut to n_pos_size.

    TextError (with the reason) for empty text, a model that reads floats, or a vocabulary too
    small for bytes.
    """
    if config.n_input != "reading":
        raise TextError(f"this model reads floats (n_input={config.n_input!r}), not text")
    ids, note = encode_text(text, config.n_pos_size)
    if max(ids) >= config.n_vocab_size:
        raise TextError(
            f"the text has byte value {max(ids)} but the model's vocabulary has {config.n_vocab_size} tokens "
            "(n_vocab_size=258 covers every byte)"
        )
    return ids, note


@torch.no_grad()
def run(model: Genesis, ids: list[int] | torch.Tensor, attention_mask: torch.Tensor | None = None) -> GenesisOutput:
    """A traced forward of one sequence (list of ids) or a batch (B, T) tensor."""
    x = torch.tensor([ids]) if isinstance(ids, list) else ids
    return model(x.to(model.device), attention_mask=attention_mask, trace=True)


def routes_alone(model: Genesis, ids: list[int]) -> list[list[int]]:
    """One sequence's route per section, run alone (only the routing: no outputs computed)."""
    return model.routes(torch.tensor([ids], device=model.device)).sample_routes()[0]


def top_k_next(output: GenesisOutput, k: int = 10, sample: int = 0, position: int = -1) -> list[tuple[int, float]]:
    """The k likeliest next tokens after `position` as (token id, probability), likeliest first."""
    if output.logits is None or output.logits.dim() != 3:
        raise ValueError("top_k_next needs a language model's output: logits over the vocabulary at each position")
    probs = torch.softmax(output.logits[sample, position].float(), dim=-1)
    values, indices = probs.topk(min(k, probs.shape[-1]))
    return list(zip(indices.tolist(), values.tolist()))


def class_probabilities(output: GenesisOutput, sample: int = 0) -> list[float]:
    """A classifier's class probabilities (one output: the probability of class 1)."""
    return output.outputs[sample].float().flatten().tolist()


def class_names(config) -> list[str] | None:
    """A classifier's class names from config.id2label (set from a training task's names), or None
    when they are transformers' placeholders (LABEL_0, ...)."""
    labels = config.id2label or {}
    if not labels or placeholder_labels(labels):
        return None
    return [str(labels.get(i, "")) for i in range(len(labels))]


@torch.no_grad()
def continuation(
    model: Genesis, ids: list[int], max_new_tokens: int, temperature: float, top_p: float, seed: int
) -> list[int]:
    """New token ids after `ids`, up to and including end-of-text: the likeliest token at temperature 0,
    else a draw from the next-token distribution at `temperature`, cut to its top-`top_p` nucleus.

    The draws come from a generator of its own seeded with `seed` (generate() would draw from torch's
    global one, which other sessions' training and sampling draw from too), so a seed gives the same
    text whatever else runs. Each step runs the last n_pos_size tokens, as generate() does."""
    generator = torch.Generator().manual_seed(seed)
    window = model.config.n_pos_size
    text = torch.tensor([ids], device=model.device)
    new: list[int] = []
    for _ in range(max_new_tokens):
        logits = model(text[:, -window:]).logits[0, -1].float().cpu()
        if not bool(torch.isfinite(logits).all()):  # (a model whose long routes overflow)
            raise ValueError("the model's next-token scores are NaN or infinite: there is nothing to sample")
        token = int(logits.argmax()) if temperature <= 0 else _nucleus_draw(logits / temperature, top_p, generator)
        new.append(token)
        if token == EOS_ID:
            break
        text = torch.cat([text, text.new_tensor([[token]])], dim=1)
    return new


def _nucleus_draw(logits: torch.Tensor, top_p: float, generator: torch.Generator) -> int:
    """One token from softmax(logits) restricted to the likeliest tokens whose probabilities reach
    top_p together (the likeliest one always stays), renormalised."""
    probabilities, order = torch.softmax(logits, dim=-1).sort(descending=True)
    if top_p < 1:  # (at 1 every token stays, also where float sums reach 1 early)
        before = probabilities.cumsum(0) - probabilities  # the mass of the likelier tokens
        probabilities = probabilities.masked_fill(before >= top_p, 0.0)
    return int(order[torch.multinomial(probabilities, 1, generator=generator)])


def route_at_step(section: SectionTrace, step: int, sample: int = 0) -> tuple[list[int], tuple[int, int] | None]:
    """A step-through of one section's route: the neurons fired up to `step` (0: the start neuron,
    h: after hop h), and the hop offered at `step` that did not fire for this sample, if any."""
    hop = section.hop_at(step, sample)
    route = section.route_of(sample)[: step + 1]
    if hop is None:
        return route, None
    passed = hop.passed[section.column(sample)]
    return route, None if passed else (hop.source, hop.chosen)


# -- batch vs alone ---------------------------------------------------------------------------


@dataclass
class LineRoutes:
    """One line's route per section when run in the batch and when run alone."""

    line: int
    batch: list[list[int]]
    alone: list[list[int]]

    @property
    def differs(self) -> bool:
        return self.batch != self.alone

    @property
    def differing_sections(self) -> list[int]:
        return [i for i, (b, a) in enumerate(zip(self.batch, self.alone)) if b != a]


def pad_batch(lines: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids (B, T) and attention mask for token lists of different lengths."""
    length = max(len(ids) for ids in lines)
    x = torch.full((len(lines), length), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(lines), length), dtype=torch.long)
    for row, ids in enumerate(lines):
        x[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    return x, mask


def batch_vs_alone(model: Genesis, lines: list[list[int]]) -> tuple[GenesisOutput, list[LineRoutes]]:
    """Run the lines as one padded batch and each alone; every line's routes both ways.

    In batch routing the candidate is chosen by the batch mean (SPEC flaw 4), and padding enters
    each soma's mean over positions, so a line's route in a batch can differ from its own.
    """
    if not lines:
        raise ValueError("no lines: give at least one")
    if empty := [i for i, line in enumerate(lines) if not len(line)]:
        raise ValueError(f"line {empty[0]} is empty: every line needs at least one token")
    x, mask = pad_batch(lines)
    batch = run(model, x, mask if len(lines) > 1 else None)
    batch_routes = batch.trace.sample_routes()
    rows = []
    for i, ids in enumerate(lines):
        rows.append(LineRoutes(i, batch_routes[i], routes_alone(model, ids)))
    return batch, rows


# -- causality --------------------------------------------------------------------------------


@dataclass
class Causality:
    """delta[k][t]: largest |change| of position t's logits when the token at position k is
    replaced; route_changed[k]: whether that replacement changed the route."""

    positions: list[int]
    delta: list[list[float]]
    route_changed: list[bool]

    def leak(self) -> list[float]:
        """Per replaced position k, the largest change at an earlier position t < k: zero for a
        strictly causal model; not zero here when the route changed (routing sees the whole text)."""
        return [max(row[:k], default=0.0) for k, row in zip(self.positions, self.delta)]


@torch.no_grad()
def causality(model: Genesis, ids: list[int], max_positions: int = 48) -> Causality:
    """Replace each of the last `max_positions` tokens in turn (by the next byte value) and
    measure every position's change of logits, each variant run alone (batch of one)."""
    base = run(model, ids)
    base_routes = base.trace.sample_routes()[0]
    positions = list(range(max(0, len(ids) - max_positions), len(ids)))
    delta, changed = [], []
    for k in positions:
        variant = list(ids)
        variant[k] = (ids[k] + 1) % 256
        out = run(model, variant)
        delta.append((out.logits[0] - base.logits[0]).abs().amax(dim=-1).tolist())  # (T,)
        changed.append(out.trace.sample_routes()[0] != base_routes)
    return Causality(positions, delta, changed)


# -- what-if ------------------------------------------------------------------------------------


def copy_for_edits(model: Genesis) -> Genesis:
    """A private copy to change (models from the app's cache are shared and must stay as they are)."""
    return copy.deepcopy(model).eval()


@torch.no_grad()
def set_threshold(edited: Genesis, original: Genesis, section: int, neuron: int, value: float) -> Genesis:
    """`edited` (a copy of `original`) with original thresholds except one neuron's: `value`."""
    sections, neurons = len(original.sections), original.config.n_neurons
    if not 0 <= section < sections:
        raise ValueError(f"section must be in [0, {sections - 1}], got {section}")
    if not 0 <= neuron < neurons:  # -1 would silently edit the last neuron
        raise ValueError(f"neuron must be in [0, {neurons - 1}], got {neuron}")
    for mine, theirs in zip(edited.sections, original.sections):
        mine.threshold.copy_(theirs.threshold)
    edited.sections[section].threshold[neuron] = value
    return edited


# -- the walkthrough ----------------------------------------------------------------------------


@dataclass
class Step:
    """One step of the guided walkthrough: which figure to show (kind, section, step) and the text."""

    kind: str  # input, split, start, hop, combine, output
    title: str
    text: str
    section: int | None = None
    step: int | None = None  # 0: the indexer's vote; h: hop h of the section


STOP_EXPLAINED = {
    STOP_BELOW_THRESHOLD: "the chosen candidate's voltage did not exceed its threshold (only the chosen one is "
    "compared), so the signal stops here",
    STOP_ALL_FIRED: "all its plain neighbors have already fired in this pass (a neuron fires at most once)",
    STOP_NO_NEIGHBORS: "it has no plain neighbors (no neighbors at all, or only attentive ones, and routes never "
    "hop to attentive neurons)",
}


def _start_text(config: GenesisConfig, section: SectionTrace) -> str:
    who = f"{len(section.indexer)} attentive neurons" if config.n_attentive_neurons else "neurons"
    best = max(section.indexer, key=lambda c: c.mean_voltage)
    parts = "attention, axon, synapses" if section.start < config.n_attentive_neurons else "axon, synapses"
    return (
        f"The indexer runs each of the {who}' dendrites and soma on the section's input: each gives one "
        "voltage (the dendrites' output averaged over all positions, weighted by the soma into one number, "
        f"through a sigmoid). Neuron {section.start} has the highest{_batch_mean(best) or ' voltage'} ({best.mean_voltage:.3f}), "
        f"so the route starts there; it fires ({parts})."
    )


def _batch_mean(candidate) -> str:
    """In a batch the choice goes by the batch mean of the voltages (batch routing)."""
    return " batch-mean voltage" if len(candidate.voltages) > 1 else ""


def _hop_text(section: SectionTrace, index: int, sample: int) -> str:
    hops = section.hops_of(sample)
    hop = hops[index]
    column = section.column(sample)
    names = ", ".join(str(c.neuron) for c in hop.candidates)
    chosen = next(c for c in hop.candidates if c.neuron == hop.chosen)
    voltage = chosen.voltages[column]
    verdict = (
        f"{voltage:.3f} > {hop.threshold:.3f}: it fires on the signal, and its output, through neuron "
        f"{hop.source}'s layer norm, is added to the signal"
        if hop.passed[column]
        else f"{voltage:.3f} ≤ {hop.threshold:.3f}: it does not fire"
    )
    text = (
        f"Neuron {hop.source} offers its signal to its plain neighbors that have not fired: {names}. "
        f"Neuron {hop.chosen} has the highest{_batch_mean(chosen) or ' voltage'} ({chosen.mean_voltage:.3f}); "
        f"against its threshold, {verdict}."
    )
    reason = section.stop_reason_of(sample)
    if index == len(hops) - 1 and reason:
        # Which neuron it ends at: the chosen one when it did not fire, else the last that fired.
        last = section.route_of(sample)[-1]
        text += f" The route ends at neuron {last}: {STOP_EXPLAINED.get(reason, reason)}."
    return text


def walkthrough(config: GenesisConfig, trace: RoutingTrace, sample: int = 0) -> list[Step]:
    """The steps of one input's pass, from the tokens to the output, explained from its trace."""
    split = config.n_section == "split"
    steps = [
        Step(
            "input",
            "Input",
            {
                "reading": "Each token becomes an embedding, plus a learned position embedding, then a Linear, "
                f"LayerNorm and SiLU: one vector of width {config.n_dim} per position.",
                "bridge": f"The float inputs go through a Linear and LayerNorm (width {config.n_dim}).",
                "none": f"The float inputs (width {config.n_dim}) are used as they are.",
            }[config.n_input],
        ),
        Step(
            "split",
            "Split" if split else "Sections in a row",
            f"Each of the {config.n_sections} sections gets its own projection of the input, width "
            f"{config.inner_dim}; they run side by side."
            if split
            else f"The {config.n_sections} sections run one after another, each at full width {config.n_dim}.",
        ),
    ]
    for section in trace.sample_sections(sample):
        i = section.section
        steps.append(Step("start", f"Section {i}: the indexer's vote", _start_text(config, section), i, 0))
        hops = section.hops_of(sample)
        for h in range(len(hops)):
            steps.append(Step("hop", f"Section {i}: hop {h + 1}", _hop_text(section, h, sample), i, h + 1))
        if not hops:
            reason = STOP_EXPLAINED.get(section.stop_reason, section.stop_reason)
            steps[-1].text += f" The route ends at once: {reason}."
    if split:
        steps.append(
            Step(
                "combine",
                "Combine",
                f"The sections' outputs are concatenated (width {config.n_dim}) and mixed by the combiner "
                "(Linear, LayerNorm, SiLU).",
            )
        )
    steps.append(
        Step(
            "output",
            "Output",
            {
                "causal_lm": "The LM head turns the last position's vector into a probability for every next token.",
                "sequence_classifier": "The positions are averaged and the classifier head gives class probabilities.",
                "bridge": "A Linear and LayerNorm give the float outputs.",
                "none": "The sections' output is the model's output.",
            }[config.n_output],
        )
    )
    return steps
