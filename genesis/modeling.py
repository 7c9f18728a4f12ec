"""Genesis in PyTorch, bottom-up: the neuron parts, a section of neurons, input/output parts, the model.

A section stores the weights of all its neurons stacked (neuron j's dendrite k is
`dendrites.weight[j, k]`), so a hop can evaluate every candidate in one batched op. The original
code base's per-neuron key layout is translated in `genesis.compat`. How a section routes a signal
lives in `genesis.routing`; this file holds the arithmetic of each part.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import inspect
import math
import operator
import os
import random
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration import (
    AUTO_CLASSES,
    FIELDS,
    ROUTING_MODES,
    ConfigError,
    GenesisConfig,
    check_size,
    sync_labels,
    validate,
    validate_with,
)
from .data import IGNORE_INDEX
from .trace import Recorder, RoutingTrace

DROPOUT = 0.1
LN_EPS = 1e-5
STRAIGHT_THROUGH_TEMPERATURE = 0.1
CACHE_FLOATS = 1 << 17  # batched candidate evaluation works on slices of about this many floats (512 KiB)
GATHER_FLOATS = 1 << 16  # candidates' dendrite weights are gathered for batched ops only up to this size
GATHERED_LISTS = 64  # gathered candidate weights kept per section (at most 64 x 256 KiB)
PER_PASS_FIELDS = ("n_routing", "n_trainable_routing", "n_causal")  # read at every pass; the rest shape the model
# Keywords that transformers (generate, Trainer, pipelines, collators) may pass and that mean nothing
# to a model without a cache, layers or token types. Any other name is a typo: refused.
TRANSFORMERS_KEYWORDS = frozenset(
    {
        "use_cache",
        "past_key_values",
        "cache_position",
        "position_ids",
        "output_attentions",
        "output_hidden_states",
        "logits_to_keep",
        "num_items_in_batch",
        "token_type_ids",
        "return_legacy_cache",
    }
)
_STRUCTURE_FIELDS = tuple(name for name in FIELDS if name not in PER_PASS_FIELDS)
_STRUCTURE = operator.itemgetter(*_STRUCTURE_FIELDS)


def neighbor_wiring(config: GenesisConfig) -> list[list[list[int]]]:
    """Each neuron's neighbors, per section: the original's algorithm with a private generator."""
    rng = random.Random(config.n_seed)
    wiring = []
    for _ in range(config.n_sections):
        section = []
        for j in range(config.n_neurons):
            others = [k for k in range(config.n_neurons) if k != j]
            section.append(rng.sample(others, config.n_neighbors))
        wiring.append(section)
    return wiring


# ---------------------------------------------------------------------------------------------
# Neuron parts, stacked over the neurons of a section


def _blank(layer: type[nn.Module], *sizes: int) -> nn.Module:
    """A Linear or Embedding without its default initialisation: that would draw from torch's global
    generator, another thread's stream (Genesis.reset_parameters fills it from a private one)."""
    return nn.utils.skip_init(layer, *sizes, device=torch.get_default_device())


@functools.lru_cache(maxsize=64)
def _ones(dim: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # A constant: layer_norm with a weight takes a faster kernel than without, and rounds the same.
    return torch.ones(dim, dtype=dtype, device=device)


@functools.lru_cache(maxsize=16)
def _causal_mask(length: int, device: torch.device) -> torch.Tensor:
    # A constant (read only, never written): building it took 0.2 ms, 6% of a one-input forward.
    return torch.ones(length, length, dtype=torch.bool, device=device).tril().view(1, 1, length, length)


def part(t: torch.Tensor, *index: int) -> torch.Tensor:
    """t[i, j, ...] of a parameter, through Tensor.select.

    Python indexing (`t[i]`) keeps the GIL while autograd locks the parameter's metadata; another thread
    in a grad-enabled op can hold that lock while it waits for the GIL (torch 2.13), and both wait
    forever. Tensor.select releases the GIL first.
    """
    for i in index:
        t = t.select(0, i)
    return t


def _in_place(a: torch.Tensor, b: torch.Tensor | None = None) -> bool:
    """In-place ops are safe (and save an allocation) when autograd tracks neither tensor."""
    return not (a.requires_grad or (b is not None and b.requires_grad))


def layer_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last axis, no bias: F.layer_norm minus its per-call backend lookup."""
    return torch.layer_norm(x, x.shape[-1:], weight, None, LN_EPS, False)


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU of a fresh result (nobody else holds it), in place when autograd allows."""
    return F.silu(x, inplace=_in_place(x))


# A uniform 32-bit word, read as int32, falls below this with probability DROPOUT (to 1e-10).
_DROP_BELOW = -(2**31) + round(DROPOUT * 2**32)
_KEEP_SCALE = np.float32(1) / np.float32(1 - DROPOUT)  # as F.dropout scales, in float32


_draws = threading.local()  # this thread's generator for dropout masks (dropout_generator), if any


@contextlib.contextmanager
def dropout_generator(generator: torch.Generator):
    """Within it, CPU dropout masks drawn in this thread come from `generator` (a CPU one), not from
    torch's global generator: a training run stays reproducible while other threads draw too."""
    previous = getattr(_draws, "generator", None)
    _draws.generator = generator
    try:
        yield generator
    finally:
        _draws.generator = previous


def dropout(x: torch.Tensor) -> torch.Tensor:
    """Dropout(DROPOUT) in training of a fresh result (in place when autograd allows), as F.dropout:
    each element zeroed with probability DROPOUT, the rest scaled by the same float32 1/(1-DROPOUT).
    On CPU the mask comes from numpy's PCG64, seeded by one draw from torch's global generator (or
    dropout_generator's), so torch.manual_seed still fixes every mask: torch's CPU Bernoulli draws
    are serial (6 ns per element) and took 40% of a training step; these take 1.3 ns."""
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return F.dropout(x, DROPOUT, True)  # Philox on the GPU is fast already; other dtypes scale in their own
    n = x.numel()
    seed = int(torch.randint(0, 2**62, (1,), generator=getattr(_draws, "generator", None)).item())
    words = np.random.PCG64(seed).random_raw((n + 1) // 2).view(np.int32)[:n]
    keep = (words >= _DROP_BELOW).astype(np.float32)
    keep *= _KEEP_SCALE
    mask = torch.from_numpy(keep).view(x.shape)
    return x.mul_(mask) if _in_place(x) else x * mask


def _silu_dropout(x: torch.Tensor, training: bool) -> torch.Tensor:
    x = silu(x)
    return dropout(x) if training else x


def norm_each(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Layer norm over the last axis with one weight per candidate (broadcast against z)."""
    if weight.numel() == z.shape[-1]:  # one candidate: the fused kernel
        return layer_norm(z, weight.view(-1))
    z = layer_norm(z, _ones(z.shape[-1], z.dtype, z.device))
    return z.mul_(weight) if _in_place(z, weight) else z * weight


def plus(fresh: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x + fresh, reusing `fresh` (a result nobody else holds) when autograd allows."""
    return fresh.add_(x) if fresh is not x and _in_place(fresh, x) else x + fresh


def plus_rows(fresh: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """fresh with rows[i] added to row index[i], reusing `fresh` (nobody else holds it) when autograd allows."""
    return fresh.index_add_(0, index, rows) if _in_place(fresh, rows) else fresh.index_add(0, index, rows)


class UnitChain(nn.Module):
    """For each of N neurons, a chain of K units: Linear(D, D, no bias) → LayerNorm(no bias) → SiLU → Dropout.

    Dendrites, synapses and the axon's unit are all such chains.
    """

    def __init__(self, n_neurons: int, n_units: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_neurons, n_units, dim, dim))  # (N, K, out, in)
        self.norm = nn.Parameter(torch.ones(n_neurons, n_units, dim))  # (N, K, D)

    @property
    def n_units(self) -> int:
        return self.weight.shape[1]

    def one(self, x: torch.Tensor, neuron: int) -> torch.Tensor:
        """Neuron `neuron`'s chain on x (..., D), unit by unit as the original computes it."""
        for k in range(self.n_units):
            x = layer_norm(F.linear(x, part(self.weight, neuron, k)), part(self.norm, neuron, k))
            x = _silu_dropout(x, self.training)
        return x

    def gather(self, index: torch.Tensor) -> CandidateChains:
        """The weights of C neurons (index (C,)) laid out for `many`."""
        count, dim = len(index), self.weight.shape[-1]
        first = self.weight.select(1, 0).index_select(0, index).view(count * dim, dim) if self.n_units else None
        rest = [self.weight.select(1, k).index_select(0, index).transpose(1, 2) for k in range(1, self.n_units)]
        return CandidateChains(first, rest, self.norm.index_select(0, index))  # rest: (C, in, out) each

    def many(self, x: torch.Tensor, chains: CandidateChains) -> torch.Tensor:
        """Chains of C neurons on the same x (R, T, D) in batched ops -> (C, R*T, D), maybe strided."""
        rows, dim, count = x.shape[0] * x.shape[1], x.shape[-1], len(chains.norm)
        h = x.reshape(rows, dim)
        if chains.first is None:
            return h.expand(count, rows, dim)
        h = F.linear(h, chains.first).view(rows, count, dim)  # one GEMM for all candidates: they share x
        h = _silu_dropout(norm_each(h, chains.norm[:, 0]), self.training).transpose(0, 1)  # (C, R*T, D)
        for k, w in enumerate(chains.rest, start=1):
            h = _silu_dropout(norm_each(torch.bmm(h, w), chains.norm[:, k, None]), self.training)
        return h


@dataclass
class CandidateChains:
    """Unit-chain weights of C candidates, gathered once for all the slices of a hop."""

    first: torch.Tensor | None  # (C*out, in): the first unit of every candidate in one GEMM
    rest: list[torch.Tensor]  # (C, in, out) per further unit
    norm: torch.Tensor  # (C, K, D)


class Soma(nn.Module):
    """v[b] = sigmoid(w · mean_t h[b, t, :]), one w per neuron."""

    def __init__(self, n_neurons: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_neurons, dim))  # (N, D)

    def one(self, h: torch.Tensor, neuron: int) -> torch.Tensor:
        return torch.sigmoid(F.linear(h.mean(dim=-2), self.weight.narrow(0, neuron, 1))).squeeze(-1)  # (B,)

    def many(self, h: torch.Tensor, weight: torch.Tensor, samples: int) -> torch.Tensor:
        """h (C, R*T, D) from UnitChain.many, weight (C, D, 1) -> voltages (C, R)."""
        count, dim = h.shape[0], h.shape[-1]
        # The mean first, as the original: a matrix-vector bmm over every position was 6x slower.
        means = h.view(count, samples, -1, dim).mean(dim=2)  # (C, R, D)
        return torch.sigmoid(torch.bmm(means, weight)).view(count, samples)


class Attention(nn.Module):
    """Multi-head scaled-dot-product attention of the attentive neurons (the first A of a section)."""

    def __init__(self, n_attentive: int, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Parameter(torch.empty(n_attentive, dim, dim))
        self.k = nn.Parameter(torch.empty(n_attentive, dim, dim))
        self.v = nn.Parameter(torch.empty(n_attentive, dim, dim))

    def one(self, x: torch.Tensor, neuron: int, y: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        source = x if y is None else y
        if y is not None:  # the causal/padding mask is over x's positions; y's keys are a separate sequence
            mask = None
        b, t, d = x.shape
        q = F.linear(x, self.q.select(0, neuron)).view(b, t, self.heads, -1).transpose(1, 2)  # (B, H, T, d)
        k = F.linear(source, self.k.select(0, neuron)).view(b, source.shape[1], self.heads, -1).transpose(1, 2)
        v = F.linear(source, self.v.select(0, neuron)).view(b, source.shape[1], self.heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, d)
        return out.transpose(1, 2).reshape(b, t, d)


@dataclass
class PassContext:
    """Everything one forward pass carries down: never stored on a module."""

    attention_mask: torch.Tensor | None  # (B, 1, T, S) bool, or None for full attention
    y: torch.Tensor | None
    recorder: Recorder | None
    trainable: bool
    router: Callable | None = None  # this pass's routing (config.n_routing, or the oracle); read by Section
    outputs: bool = True  # False: only the routes are wanted (Genesis.routes), a section may return None


class Section(nn.Module):
    """N neurons (the first A attentive) and their wiring; the pass says how they route (ctx.router)."""

    def __init__(self, config: GenesisConfig, index: int, neighbors: list[list[int]]):
        super().__init__()
        n, d = config.n_neurons, config.inner_dim
        self.index = index
        self.n_attentive = config.n_attentive_neurons
        self.neighbors = neighbors  # plain Python lists: the wiring never changes after build
        self.plain_neighbors = [[c for c in row if c >= self.n_attentive] for row in neighbors]
        self.register_buffer("neighbor_table", torch.tensor(neighbors, dtype=torch.long).view(n, -1), persistent=False)
        self.dendrites = UnitChain(n, config.n_dendritics, d)
        self.soma = Soma(n, d)
        self.attention = Attention(config.n_attentive_neurons, d, config.n_attentive_neuron_heads)
        self.axon = UnitChain(n, 1, d)
        self.synapses = UnitChain(n, config.n_synapses, d)
        self.norm = nn.Parameter(torch.ones(n, d))  # each neuron's own `ln`, applied when it connects
        self.threshold = nn.Parameter(torch.full((n,), 0.5))
        self._indices: dict = {}  # candidate list -> index tensor; constants, since the wiring is fixed
        self._gathered: dict = {}  # candidate list -> gathered weights (no-grad passes), see _candidate_weights

    def __getstate__(self) -> dict:
        # Passes in other threads fill the caches: a copy (deepcopy, pickle) starts with empty ones
        # instead of iterating a dict that another pass is growing ("changed size during iteration").
        return {**self.__dict__, "_indices": {}, "_gathered": {}}

    @property
    def n_neurons(self) -> int:
        return self.threshold.shape[0]

    def neuron_index(self, neurons: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """The index tensor of a candidate list, made once (a hop asks for the same few lists every pass)."""
        key = (neurons, device)
        index = self._indices.get(key)
        if index is None:
            index = self._indices[key] = torch.tensor(neurons, dtype=torch.long, device=device)
        return index

    def interact(self, x: torch.Tensor, neuron: int) -> torch.Tensor:
        """Dendrite chain then soma: per-sample voltages (B,) of one neuron (literal path)."""
        return self.soma.one(self.dendrites.one(x, neuron), neuron)

    def interact_many(self, x: torch.Tensor, neurons: tuple[int, ...]) -> torch.Tensor:
        """Voltages (C, R) of C neurons on x (R, T, D), in batched ops.

        Samples are independent here, so large batches go in slices whose work fits in cache.
        """
        if len(neurons) * math.prod(self.dendrites.weight.shape[1:]) > GATHER_FLOATS:
            # Wide neurons: gathering their weights costs more than it saves; run each on views.
            return torch.stack([self.interact(x, neuron) for neuron in neurons])
        chains, soma = self._candidate_weights(neurons, x.device)
        per_slice = max(1, CACHE_FLOATS // (len(neurons) * x.shape[1] * x.shape[2]))
        if x.shape[0] <= per_slice:
            return self.soma.many(self.dendrites.many(x, chains), soma, x.shape[0])
        parts = [self.soma.many(self.dendrites.many(part, chains), soma, len(part)) for part in x.split(per_slice)]
        return torch.cat(parts, dim=1)

    def _candidate_weights(self, neurons: tuple[int, ...], device) -> tuple[CandidateChains, torch.Tensor]:
        """Gathered weights (chains, soma (C, D, 1)) of a candidate list. Without autograd they are kept
        while the weights stay the same: a hop asks for the same few lists every pass."""
        index = self.neuron_index(neurons, device)

        def gather() -> tuple[CandidateChains, torch.Tensor]:
            return self.dendrites.gather(index), self.soma.weight.index_select(0, index).unsqueeze(-1)

        if torch.is_grad_enabled():
            return gather()
        sources = (self.dendrites.weight, self.dendrites.norm, self.soma.weight)
        hit = self._gathered.get((neurons, device))
        if hit is None or not _unchanged(sources, hit[0], hit[1]):
            if len(self._gathered) >= GATHERED_LISTS:
                self._gathered.clear()
            held = tuple(p.detach() for p in sources)  # keeps the storage alive: its address stays unique
            hit = self._gathered[(neurons, device)] = (held, tuple(p._version for p in sources), gather())
        return hit[2]

    def fire(self, x: torch.Tensor, neuron: int, ctx: PassContext | None) -> torch.Tensor:
        """A neuron's own work before it connects: x + axon(x), then + synapse chain.

        Only a start neuron gets ctx (attention mask and y); hops fire with neither, as in the original.
        """
        a = x
        if neuron < self.n_attentive:
            mask = ctx.attention_mask if ctx is not None else None
            a = self.attention.one(x, neuron, ctx.y if ctx is not None else None, mask)
        x = plus(self.axon.one(a, neuron), x)  # (B, T, D)
        return plus(self.synapses.one(x, neuron), x)

    def connect_norm(self, p: torch.Tensor, neuron: int) -> torch.Tensor:
        """The connecting neuron's `ln` on the candidate's result."""
        return layer_norm(p, self.norm.select(0, neuron))

    def forward(self, x: torch.Tensor, ctx: PassContext) -> tuple[torch.Tensor | None, int]:
        return ctx.router(self, x, ctx)


def _unchanged(params: tuple[torch.Tensor, ...], held: tuple[torch.Tensor, ...], versions: tuple[int, ...]) -> bool:
    """Same storage and no in-place change since (optimizer steps and loads bump `_version`)."""
    return all(p.data_ptr() == h.data_ptr() and p._version == v for p, h, v in zip(params, held, versions, strict=True))


def straight_through(voltage: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """1 in the forward pass; in the backward pass the gradient of sigmoid((v - θ)/τ).

    Lets dendrites, somas and thresholds learn without changing a single forward value.
    """
    soft = torch.sigmoid((voltage - threshold) / STRAIGHT_THROUGH_TEMPERATURE)
    return 1.0 + (soft - soft.detach())


# ---------------------------------------------------------------------------------------------
# Input and output parts (the original's names, so their keys match its checkpoints)


class Reading(nn.Module):
    """Token ids -> SiLU(LayerNorm(Linear(wte[ids] + wpe[0..T-1])))."""

    def __init__(self, config: GenesisConfig):
        super().__init__()
        self.wte = _blank(nn.Embedding, config.n_vocab_size, config.n_dim)
        self.wpe = _blank(nn.Embedding, config.n_pos_size, config.n_dim)
        self.fc_out = _blank(nn.Linear, config.n_dim, config.n_dim)
        self.ln = nn.LayerNorm(config.n_dim)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        vocab, length = self.wte.num_embeddings, input_ids.shape[-1]
        if input_ids.numel():
            low, high = torch.aminmax(input_ids)  # one reduction instead of two
            if int(low) < 0 or int(high) >= vocab:
                raise ValueError(f"token ids must be in [0, {vocab - 1}] (n_vocab_size={vocab})")
        if length > self.wpe.num_embeddings:
            raise ValueError(f"{length} tokens is longer than n_pos_size={self.wpe.num_embeddings}; truncate or window")
        positions = torch.arange(length, device=input_ids.device)
        h = plus(self.wte(input_ids), self.wpe(positions).unsqueeze(0))  # (B, T, n_dim)
        return silu(self.ln(self.fc_out(h)))


class Bridge(nn.Module):
    """Float inputs (or outputs) of width n_dim: LayerNorm(Linear(x))."""

    def __init__(self, config: GenesisConfig):
        super().__init__()
        self.fc_out = _blank(nn.Linear, config.n_dim, config.n_dim)
        self.ln = nn.LayerNorm(config.n_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.fc_out(x))


class Combiner(nn.Module):
    """Concatenated section outputs -> SiLU(LayerNorm(Linear(...)))."""

    def __init__(self, config: GenesisConfig):
        super().__init__()
        self.fc_out = _blank(nn.Linear, config.n_dim, config.n_dim)
        self.ln = nn.LayerNorm(config.n_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return silu(self.ln(self.fc_out(x)))


class CausalLM(nn.Module):
    def __init__(self, config: GenesisConfig):
        super().__init__()
        self.lm_head = _blank(nn.Linear, config.n_dim, config.n_vocab_size)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None):
        logits = self.lm_head(h)  # (B, T, V)
        loss = None
        if labels is not None:
            labels = _token_labels(labels, logits)
        if labels is not None and labels.shape[-1] > 1:  # position t predicts token t+1 (none for one token)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
        return logits, logits, loss


def _token_labels(labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """An LM's labels as int64 token ids of the inputs' shape (-100: ignored), or a message naming
    what is wrong (torch's own says "Target 300 is out of bounds" or names flattened sizes)."""
    if _tensor(labels).dtype not in (torch.long, torch.int32):  # uint8's comparisons with -100 wrap
        raise ValueError(f"labels must be a tensor of token ids (int64 or int32), got {labels.dtype}")
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"labels must have the inputs' shape {tuple(logits.shape[:2])}, got {tuple(labels.shape)}")
    vocab = logits.shape[-1]
    return _indices(labels.long(), vocab, f"token ids in [0, {vocab - 1}] or {IGNORE_INDEX}")


class SequenceClassifier(nn.Module):
    def __init__(self, config: GenesisConfig):
        super().__init__()
        self.fc_out = _blank(nn.Linear, config.n_dim, config.n_outputs)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None):
        logits = self.fc_out(h.mean(dim=1))  # (B, n_outputs)
        single = logits.shape[-1] == 1
        outputs = torch.sigmoid(logits) if single else torch.softmax(logits, dim=-1)
        loss = None
        if labels is not None:
            # Binary: the original's BCE on probabilities. Several classes: cross entropy on the
            # logits (the original's NLLLoss on softmax outputs was wrong).
            if single:
                loss = _binary_loss(outputs.view(-1), labels)
            else:
                loss = F.cross_entropy(logits, _class_indices(labels, *logits.shape))
        return outputs, logits, loss


def _binary_loss(probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The original's BCE on probabilities, over labels in [0, 1] (-100: ignored, as for several classes)."""
    if _tensor(labels).is_complex() or labels.numel() != probabilities.numel():
        raise ValueError(
            f"labels of a binary classifier must be one 0/1 value per sample, got shape {tuple(labels.shape)}"
        )
    labels = labels.view(-1) if labels.is_floating_point() else labels.view(-1).long()
    keep = labels != IGNORE_INDEX
    wrong = keep & ~((labels >= 0) & (labels <= 1))  # NaN too
    if bool(wrong.any()):
        raise ValueError(
            f"labels of a binary classifier (n_outputs=1) must be in [0, 1] (or -100), got {labels[wrong][0].item()}"
        )
    if bool(keep.all()):
        return F.binary_cross_entropy(probabilities, labels.to(probabilities.dtype))
    return F.binary_cross_entropy(probabilities[keep], labels[keep].to(probabilities.dtype))


def _tensor(labels: Any) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a tensor, got {type(labels).__name__}")
    return labels


def _class_indices(labels: torch.Tensor, samples: int, classes: int) -> torch.Tensor:
    """Labels as class indices in [0, classes) (-100: ignored, as transformers does); nothing is truncated."""
    if _tensor(labels).is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels of a {classes}-class classifier must be integer class indices, got {labels.dtype}")
    if labels.numel() != samples:
        raise ValueError(f"labels must be one class index per sample ({samples}), got shape {tuple(labels.shape)}")
    return _indices(labels.view(-1).long(), classes, f"class indices in [0, {classes}) (n_outputs={classes})")


def _indices(labels: torch.Tensor, high: int, what: str) -> torch.Tensor:
    """int64 labels in [0, high) or IGNORE_INDEX, else a message with the first one that is not."""
    wrong = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= high))
    if bool(wrong.any()):
        raise ValueError(f"labels must be {what}, got {int(labels[wrong][0])}")
    return labels


class BridgeOutput(Bridge):
    def forward(self, h: torch.Tensor, labels: torch.Tensor | None):  # type: ignore[override]
        outputs = super().forward(h)
        if labels is None:
            return outputs, outputs, None
        if not _tensor(labels).is_floating_point() or labels.shape != outputs.shape:  # mse_loss would broadcast
            raise ValueError(
                f"labels of a bridge output must be floats of the outputs' shape {tuple(outputs.shape)}, "
                f"got {labels.dtype} of shape {tuple(labels.shape)}"
            )
        return outputs, outputs, F.mse_loss(outputs, labels.to(outputs.dtype))


class Identity(nn.Module):
    def forward(self, h: torch.Tensor, labels: torch.Tensor | None = None):
        return h, h, None


class IdentityInput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# ---------------------------------------------------------------------------------------------
# The model


@dataclass
class GenesisOutput(ModelOutput):
    """outputs: the final tensor (probabilities for a classifier); logits: before the last activation."""

    loss: torch.Tensor | None = None
    outputs: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    neuron_activation_count: int | None = None
    trace: RoutingTrace | None = None
    # output_hidden_states: one entry, the hidden state the head reads (after the combiner in split mode).
    # Routed neurons are not layers, so there is no per-layer stack to return.
    hidden_states: tuple[torch.Tensor, ...] | None = None


def _refuse_integer_weights(path: str) -> None:
    """Integer tensors in a safetensors file are no weights (genesis.io refuses them too): transformers
    would cast them to floats and run them."""
    if not os.path.isfile(path):
        return
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                dtype = f.get_slice(key).get_dtype()
                if not dtype.startswith(("F", "BF")):
                    raise ValueError(f"{path}: tensor {key} has dtype {dtype}; weights must be floats")
    except SafetensorError as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None


class GenesisPreTrainedModel(PreTrainedModel):
    config_class = GenesisConfig
    base_model_prefix = "genesis"
    main_input_name = "input_ids"
    _supports_cache_class = False
    _is_stateful = False
    # forward() takes **kwargs for generate(), not for the Trainer's num_items_in_batch: the loss is
    # already a mean, so the Trainer must do its own scaling (gradient accumulation, processes).
    accepts_loss_kwargs = False

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any):
        """transformers' loader, refusing what it only logs: missing weights (left as uninitialised
        memory: reset_parameters initialises whole models, not single tensors), unexpected or
        mis-shaped ones, and NaN or infinite values (genesis.io refuses the same)."""
        wants_info = kwargs.pop("output_loading_info", False)
        source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        if kwargs.get("config") is None and isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
            if not os.path.isfile(os.path.join(source, "config.json")):  # it would build the full-size default
                raise ValueError(f"{source}: no config.json here (a model folder holds config.json and the weights)")
        if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
            _refuse_integer_weights(os.path.join(source, "model.safetensors"))  # transformers would cast them
        # Mis-shaped weights (a field such as n_dim overridden here) are refused below, by name.
        kwargs.setdefault("ignore_mismatched_sizes", True)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        problems = (
            [f"missing {k}" for k in sorted(info.get("missing_keys", ()))]
            + [f"unexpected {k}" for k in sorted(info.get("unexpected_keys", ()))]
            + [f"mis-shaped {k[0] if isinstance(k, tuple) else k}" for k in info.get("mismatched_keys", ())]
        )
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            overridden = [name for name in kwargs if name in FIELDS]
            why = f" ({', '.join(overridden)} given here: the saved weights have the saved config's shapes)"
            raise ValueError(
                f"the checkpoint does not fit the config: {'; '.join(problems[:5])}{more}{why if overridden else ''}"
            )
        for name, p in model.named_parameters():
            if p.device.type != "meta" and not torch.isfinite(p).all():
                raise ValueError(f"the checkpoint's {name} contains NaN or infinite values")
        _own_memory(model)
        return (model, info) if wants_info else model

    def _init_weights(self, module: nn.Module) -> None:
        # Initialisation is done once for the whole model, deterministically, in reset_parameters().
        # But from_pretrained re-creates non-persistent buffers as empty memory and expects them
        # filled here: rebuild the wiring table from the wiring.
        if isinstance(module, Section):
            module.neighbor_table.copy_(torch.tensor(module.neighbors, dtype=torch.long).view_as(module.neighbor_table))


class Genesis(GenesisPreTrainedModel, GenerationMixin):
    """A Genesis network: input part, sections of routed neurons, output part."""

    def __init__(self, config: GenesisConfig, **size_limits: Any):
        # Refuse oversized configs before allocating: max_parameters / max_activation_bytes as in
        # configuration.check_size, where None lifts that limit. Activations are estimated for one
        # full-length sequence: the caller's batch size is not known yet.
        for name in size_limits:  # from_pretrained hands on every keyword the config did not take
            if name in FIELDS:
                raise ConfigError(name, "is a config field: set it in the config, not in Genesis(config, ...)")
            if name not in ("max_parameters", "max_activation_bytes"):
                close = difflib.get_close_matches(name, [*FIELDS, "max_parameters", "max_activation_bytes"], n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(name, f"is not a Genesis field nor a size limit{hint}")
        sync_labels(config)  # n_outputs set after the config was made (from_pretrained keywords, setattr)
        check_size(config, **{"batch_size": 1, **size_limits})
        super().__init__(config)
        self._build(config)
        self.post_init()  # reset_parameters(): every weight from a private generator

    def _build(self, config: GenesisConfig) -> None:
        self._built = self._structure(config)
        wiring = neighbor_wiring(config)
        self.input = {"reading": Reading, "bridge": Bridge, "none": lambda c: IdentityInput()}[config.n_input](config)
        self.sections = nn.ModuleList(Section(config, i, wiring[i]) for i in range(config.n_sections))
        if config.n_section == "split":
            width = config.inner_dim
            self.a_splits = nn.ModuleList(_blank(nn.Linear, config.n_dim, width) for _ in range(config.n_sections))
            if config.n_cross_attention:
                self.c_splits = nn.ModuleList(_blank(nn.Linear, config.n_dim, width) for _ in range(config.n_sections))
            self.combiner = Combiner(config)
            self._run_sections = self._run_split
        else:
            self._run_sections = self._run_sequential
        self.output = {
            "causal_lm": CausalLM,
            "sequence_classifier": SequenceClassifier,
            "bridge": BridgeOutput,
            "none": lambda c: Identity(),
        }[config.n_output](config)

    # -- initialisation ---------------------------------------------------------------------

    def init_weights(self) -> None:
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, seed: int | None = None) -> None:
        """PyTorch's default initialisations (as the original), drawn from a private generator.

        The same config and seed give the same weights in any process.
        """
        g = torch.Generator().manual_seed(self.config.n_seed if seed is None else seed)

        def uniform(p: torch.Tensor, fan_in: int) -> None:
            bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
            p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=g))

        for name, p in self.named_parameters():
            if p.device.type == "meta":
                continue
            leaf = name.rsplit(".", 1)[-1]
            if name.endswith("threshold"):
                p.fill_(0.5)
            elif leaf == "norm" or (leaf in ("weight", "bias") and ".ln." in f".{name}"):
                p.fill_(1.0 if leaf != "bias" else 0.0)
            elif ".wte." in f".{name}" or ".wpe." in f".{name}":
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # Linear weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                uniform(p, p.shape[-1] if leaf != "bias" else self._fan_in_of_bias(name))
        for section in self.sections:  # the wiring table is a buffer: empty after meta → to_empty()
            if section.neighbor_table.device.type != "meta":
                self._init_weights(section)

    def _fan_in_of_bias(self, name: str) -> int:
        return self.get_parameter(name[: -len("bias")] + "weight").shape[-1]

    # -- wiring and introspection -------------------------------------------------------------

    def neighbor_lists(self) -> list[list[list[int]]]:
        """The wiring: list[section][neuron] -> list of neighbor indices."""
        return [[list(n) for n in s.neighbors] for s in self.sections]

    def drop_kept_weights(self) -> None:
        """Forget the candidates' gathered weights that no-grad passes keep while the weights' version
        counters stay put. Needed only after writing weights through `.data` (p.data.mul_(...)), which
        bumps no version counter (autograd does not see such writes either); torch.no_grad() edits,
        optimizer steps and loads are seen by themselves."""
        for section in self.sections:
            section._gathered.clear()

    def thresholds(self) -> list[list[float]]:
        return [s.threshold.detach().cpu().tolist() for s in self.sections]

    # -- forward ------------------------------------------------------------------------------

    def _attention_mask(self, attention_mask: torch.Tensor | None, t: int, device) -> torch.Tensor | None:
        """Causal (for an LM) combined with padding; every query keeps itself so no row is empty."""
        causal = self.config.is_causal
        if attention_mask is None:
            return _causal_mask(t, device) if causal else None
        keep = _causal_mask(t, device) if causal else torch.ones(1, 1, t, t, dtype=torch.bool, device=device)
        keep = keep & attention_mask.bool()[:, None, None, :]
        return keep | torch.eye(t, dtype=torch.bool, device=device)

    def _run_split(self, h: torch.Tensor, y: torch.Tensor | None, ctx: PassContext) -> tuple[torch.Tensor | None, int]:
        outs, count = [], 0
        for i, section in enumerate(self.sections):
            ctx_i = dataclasses.replace(ctx, y=None)
            if self.config.n_cross_attention and y is not None:
                ctx_i.y = self.c_splits[i](y)
            out, fired = section(self.a_splits[i](h), ctx_i)  # (B, T, n_dim / n_sections)
            outs.append(out)
            count += fired
        return (self.combiner(torch.cat(outs, dim=-1)) if ctx.outputs else None), count

    def _run_sequential(
        self, h: torch.Tensor, y: torch.Tensor | None, ctx: PassContext
    ) -> tuple[torch.Tensor | None, int]:
        count, last = 0, len(self.sections) - 1
        for i, section in enumerate(self.sections):
            # Every section but the last feeds the next one, so its output is needed for the routes too.
            ctx_i = dataclasses.replace(
                ctx, y=y if self.config.n_cross_attention else None, outputs=ctx.outputs or i < last
            )
            h, fired = section(h, ctx_i)
            count += fired
        return h, count

    def forward(
        self,
        inputs: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        trace: bool = False,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        return_dict: bool | None = None,
        implementation: str = "fast",
        routing: str | None = None,
        **kwargs: Any,  # generate() passes use_cache and friends (TRANSFORMERS_KEYWORDS)
    ) -> GenesisOutput:
        """Run the network. `implementation="reference"` runs the literal SPEC path (the oracle);
        `routing` ("batch" or "sample") overrides config.n_routing for this pass only."""
        _check_keywords(kwargs)
        x = _given(inputs, input_ids, inputs_embeds)
        h, count, recorder = self._pass(x, attention_mask, y, trace, implementation, routing, outputs=True)
        hidden = kwargs.get("output_hidden_states")
        hidden = self.config.output_hidden_states if hidden is None else hidden
        outputs, logits, loss = self.output(h, labels)
        result = GenesisOutput(
            loss=loss,
            outputs=outputs,
            logits=logits,
            neuron_activation_count=count,
            trace=recorder.finish() if recorder is not None else None,
            hidden_states=(h,) if hidden else None,
        )
        # A tuple only when asked for in the call (not from config.return_dict: the library's own
        # callers read the output's fields).
        return result if return_dict is not False else result.to_tuple()

    def routes(
        self,
        inputs: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        implementation: str = "fast",
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        routing: str | None = None,
    ) -> RoutingTrace:
        """The routes of a pass (the trace that `forward(..., trace=True)` gives), without its outputs:
        the sections do not fold their neurons' results back, the combiner and the head do not run.
        In a sequential model every section but the last still computes its output (the next one's input).
        In train mode dropout changes the voltages on every call: use .eval() for the model's own routes.
        `routing` ("batch" or "sample") overrides config.n_routing for this call only."""
        x = _given(inputs, input_ids, inputs_embeds)
        with torch.no_grad():
            _, _, recorder = self._pass(x, attention_mask, y, True, implementation, routing, outputs=False)
        return recorder.finish()

    def _pass(
        self,
        x: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        y: torch.Tensor | None,
        trace: bool,
        implementation: str,
        routing: str | None,
        outputs: bool,
    ) -> tuple[torch.Tensor | None, int, Recorder | None]:
        """Input and sections: the last hidden state (None when `outputs` is False), the count, the recorder."""
        from .routing import ROUTERS

        if x is None:
            raise ValueError("no inputs: pass token ids (or float inputs for a bridge input) as `inputs`")
        if implementation not in ("fast", "reference"):
            raise ValueError(f"implementation must be 'fast' or 'reference', got {implementation!r}")
        self._check_structure()
        self._check_inputs(x, attention_mask, y)
        name = "config.n_routing" if routing is None else "routing"
        if routing is None:
            routing = self.config.n_routing  # read every pass: setting config.n_routing switches the routing
        if routing not in ROUTING_MODES:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, ROUTING_MODES))}, got {routing!r}")
        causal = self.config.n_causal
        if type(self.config.n_trainable_routing) is not bool or (causal is not None and type(causal) is not bool):
            validate(self.config)  # names the field; 1 or "yes" would otherwise run and then not load
        if implementation == "reference" and routing != "batch":
            raise ValueError(
                "the reference path implements batch routing; compare per-sample routing with batch-of-one runs"
            )
        router = ROUTERS["reference" if implementation == "reference" else routing]
        recorder = Recorder(routing, x.shape[0]) if trace else None
        mask = self._attention_mask(attention_mask, x.shape[1], x.device)
        trainable = self.config.n_trainable_routing and torch.is_grad_enabled()
        ctx = PassContext(mask, None, recorder, trainable, router, outputs)
        h, count = self._run_sections(self.input(x), y, ctx)  # (B, T, n_dim)
        return h, count, recorder

    def _check_inputs(self, x: torch.Tensor, attention_mask: torch.Tensor | None, y: torch.Tensor | None) -> None:
        """Name what is wrong with the inputs, before a shape error deep inside says it less clearly."""
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"inputs must be a tensor, got {type(x).__name__}")
        if x.numel() == 0:  # before the dtype: torch.tensor([[]]) is a float tensor
            raise ValueError(f"empty inputs: shape {tuple(x.shape)} (need at least one sample of one position)")
        if self.config.n_input == "reading":
            if x.dim() != 2 or x.dtype not in (torch.long, torch.int32):
                raise ValueError(
                    f"this model reads token ids: a (batch, length) int64 or int32 tensor, got {x.dtype} of shape "
                    f"{tuple(x.shape)}"
                    + (" (floats go to a model with n_input='bridge')" if x.is_floating_point() else "")
                )
        elif x.dim() != 3 or not x.is_floating_point() or x.shape[-1] != self.config.n_dim:
            raise ValueError(
                f"this model reads floats (n_input={self.config.n_input!r}): a (batch, length, {self.config.n_dim}) "
                f"float tensor, got {x.dtype} of shape {tuple(x.shape)}"
            )
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"empty inputs: shape {tuple(x.shape)} (need at least one sample of one position)")
        for name, floats in (("inputs", x), ("y", y)):
            if isinstance(floats, torch.Tensor) and floats.is_floating_point() and floats.dtype != self.dtype:
                raise ValueError(
                    f"{name}: {str(floats.dtype).removeprefix('torch.')}, but the model's weights are "
                    f"{str(self.dtype).removeprefix('torch.')}: pass {name}.to(model.dtype)"
                )
        if attention_mask is not None and tuple(attention_mask.shape) != tuple(x.shape[:2]):
            raise ValueError(
                f"attention_mask must have the inputs' (batch, length) = {tuple(x.shape[:2])}, "
                f"got {tuple(attention_mask.shape)}"
            )
        if y is None:
            return
        if not self.config.n_cross_attention:
            raise ValueError("y is only read by cross-attention, and this model has n_cross_attention=False")
        width = self.config.n_dim
        if not isinstance(y, torch.Tensor) or y.dim() != 3 or not y.is_floating_point() or y.shape[-1] != width:
            got = f"{y.dtype} of shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must be a (batch, length, {width}) float tensor (n_dim={width}), got {got}")
        if y.shape[0] != x.shape[0] or y.shape[1] == 0:
            raise ValueError(f"y must have the inputs' batch size {x.shape[0]} and a length >= 1, got {tuple(y.shape)}")

    @staticmethod
    def _structure(config: GenesisConfig) -> tuple:
        return _STRUCTURE(vars(config))  # the instance dict: the config's own getattr costs 15 µs a pass

    def _check_structure(self) -> None:
        """Refuse to run or save after a config field that shapes the built model was changed: the
        model would run its old structure, and a saved config would rebuild another one."""
        if self._structure(self.config) == self._built:
            return
        now = dict(zip(_STRUCTURE_FIELDS, self._structure(self.config)))
        built = dict(zip(now, self._built))
        changed = next(name for name in now if now[name] != built[name])
        raise ValueError(
            f"config.{changed} was changed from {built[changed]!r} to {now[changed]!r} after the model was built; "
            f"only {', '.join(PER_PASS_FIELDS)} take effect on a built model: build a new one (Genesis(config))"
        )

    def save_pretrained(self, *args, **kwargs):
        self._check_structure()
        validate(self.config)  # a per-pass field set to a bad value would save, then not load
        return super().save_pretrained(*args, **kwargs)

    # -- embeddings (transformers' resize_token_embeddings) -------------------------------------

    def get_input_embeddings(self) -> nn.Embedding:
        if self.config.n_input != "reading":
            raise NotImplementedError(f"n_input={self.config.n_input!r} reads floats: there are no token embeddings")
        return self.input.wte

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.input.wte = value

    def get_output_embeddings(self) -> nn.Linear | None:
        return self.output.lm_head if self.config.n_output == "causal_lm" else None

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.output.lm_head = value

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, **kw):
        """transformers' resize (embeddings, LM head and its bias, config.n_vocab_size); the new
        vocabulary size then counts as the built structure. A size the config refuses (out of
        range, below the end-of-text or pad id) is refused before anything changes."""
        if new_num_tokens is not None:
            size = new_num_tokens
            if pad_to_multiple_of:
                size = -(-size // pad_to_multiple_of) * pad_to_multiple_of
            validate_with(self.config, n_vocab_size=size)
        embeddings = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, **kw)
        self._built = self._structure(self.config)
        return embeddings

    # -- generation ---------------------------------------------------------------------------

    def generate(self, *args, **kwargs):
        """transformers' generate(); the model has no KV cache, so use_cache is always off."""
        if self.config.n_output != "causal_lm":
            raise ValueError(f"generate() needs a language model (n_output='causal_lm'), not {self.config.n_output!r}")
        kwargs["use_cache"] = False
        prompt = _given(args[0] if args else None, kwargs.get("inputs"), kwargs.get("input_ids"))
        if isinstance(prompt, torch.Tensor) and prompt.dim() != 2:
            raise ValueError(
                f"prompts must be a (batch, length) tensor of token ids, got shape {tuple(prompt.shape)}"
                + (" (one prompt: ids[None])" if prompt.dim() == 1 else "")
            )
        mask, pad = kwargs.get("attention_mask"), kwargs.get("pad_token_id")
        if mask is None and isinstance(prompt, torch.Tensor) and pad is not None and bool((prompt == pad).any()):
            mask = prompt != pad  # transformers infers this mask from the pad id: the same caveat holds
        if isinstance(mask, torch.Tensor) and not bool(mask.all()):
            warnings.warn(
                "the attention mask pads some prompts: in Genesis padding changes routes and outputs (somas average "
                "over every position, pads included, and positions count from the first column); generate "
                "prompts of different lengths one at a time for the tokens each gives alone",
                stacklevel=2,
            )
        return super().generate(*args, **kwargs)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        # No KV cache: the whole (windowed) text is run again for each new token.
        window = self.config.n_pos_size
        if attention_mask is not None:
            attention_mask = attention_mask[:, -window:]
        inputs = {"inputs": input_ids[:, -window:], "attention_mask": attention_mask}
        # generate() hands on every forward() keyword it was given: y, routing, implementation, and
        # output_hidden_states (return_dict_in_generate collects them); they were dropped before.
        for name in ("y", "routing", "implementation", "output_hidden_states", "output_attentions"):
            if kwargs.get(name) is not None:
                inputs[name] = kwargs[name]
        return inputs

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        if model_kwargs.get("attention_mask") is not None:
            mask = model_kwargs["attention_mask"]
            model_kwargs["attention_mask"] = torch.cat([mask, mask.new_ones((mask.shape[0], num_new_tokens))], dim=-1)
        return model_kwargs


@torch.no_grad()
def _own_memory(model: nn.Module) -> None:
    """Copy CPU weights out of the checkpoint file. transformers maps the safetensors file into
    memory (copy-on-write) and leaves the tensors there, at offsets that are not 64-byte aligned:
    GEMMs then round differently (voltages 1 ulp from the same weights built in memory), and a file
    rewritten in place under a loaded model changes its weights or kills the process (SIGBUS)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.device.type == "cpu":
            tensor.data = tensor.data.clone()


def _check_keywords(kwargs: dict[str, Any]) -> None:
    """A misspelt argument (attn_mask=...) would otherwise be swallowed by **kwargs and the pass run
    without it; a request this model cannot serve is named."""
    for name in kwargs:
        if name not in TRANSFORMERS_KEYWORDS:
            known = [*inspect.signature(Genesis.forward).parameters, *TRANSFORMERS_KEYWORDS]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise TypeError(f"Genesis.forward() got an unexpected keyword argument {name!r}{hint}")
    if kwargs.get("output_attentions"):
        raise ValueError(
            "output_attentions: Genesis has no stack of attention layers to return; trace=True records the routing"
        )


def _given(*inputs: torch.Tensor | None) -> torch.Tensor | None:
    """The input given (HF names the same thing `inputs`, `input_ids` or `inputs_embeds`)."""
    given = [x for x in inputs if x is not None]
    if len(given) > 1:
        raise ValueError("inputs, input_ids and inputs_embeds name the same input: pass only one of them")
    return given[0] if given else None


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _OneHead(Genesis):
    """Genesis for an Auto class that stands for one kind of head: AutoModelForCausalLM must not
    hand back a classifier (it would have no vocabulary to generate from), nor the other way round."""

    output_mode = ""

    def __init__(self, config: GenesisConfig, **size_limits: Any):
        if config.n_output != self.output_mode:
            auto = next(a for a, name in AUTO_CLASSES.items() if name == type(self).__name__)
            raise ConfigError(
                "n_output",
                f"is {config.n_output!r}, but {auto} makes {self.output_mode!r} models: "
                "load this one with AutoModel or Genesis.from_pretrained",
            )
        super().__init__(config, **size_limits)


class GenesisForCausalLM(_OneHead):
    """What AutoModelForCausalLM makes: a Genesis with the causal-LM head, nothing else."""

    output_mode = "causal_lm"


class GenesisForSequenceClassification(_OneHead):
    """What AutoModelForSequenceClassification makes: a Genesis with the classifier head."""

    output_mode = "sequence_classifier"


# Replace the stand-ins that genesis/__init__.py registers (it loads this module on first use).
for _auto, _model in AUTO_CLASSES.items():
    getattr(transformers, _auto).register(GenesisConfig, globals()[_model], exist_ok=True)
