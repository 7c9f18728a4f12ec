"""The original code base's structure, rebuilt from the article and SPEC: a stand-in to time against.

The original code is not available here; the issue gives its timings on this machine (32.9 ms at
B=8, 8.0 ms at B=1, 5.71 s for 512 single inputs of the app config). This rebuild follows the
article's classes as written — one module per dendrite, synapse, soma and axon of every neuron, an
`activated` flag on each neuron, recursion through `connect`, one `interact` per candidate on the
whole batch — so that the benchmark can put the fast path side by side with that structure and say
how far the issue's timings are from it. Only what the benchmark needs: token input, split or
sequential sections, the causal LM head. It loads the original's checkpoint layout
(`genesis.compat.to_original`) with strict=True and must reproduce the golden LM cases
(tests/test_original_style.py).

Like the original, it keeps per-pass state on its modules: never run it from two threads.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn


class Unit(nn.Module):
    """Linear → LayerNorm → SiLU → Dropout, all without bias: the original's Dendritic and Synapse."""

    def __init__(self, n_dim: int):
        super().__init__()
        self.fc_out = nn.Linear(n_dim, n_dim, bias=False)
        self.ln = nn.LayerNorm(n_dim, bias=False)
        self.act = nn.SiLU()
        self.dropout = nn.Dropout(0.1)

    def forward(self, x):
        return self.dropout(self.act(self.ln(self.fc_out(x))))


class Soma(nn.Module):
    def __init__(self, n_dim: int):
        super().__init__()
        self.fc_out = nn.Linear(n_dim, 1, bias=False)

    def forward(self, x):
        v = torch.sigmoid(self.fc_out(torch.mean(x, dim=1)))  # (B, 1)
        return v, v.mean()


class Axon(Unit):
    """Multi-head attention (attentive neurons only), then a unit."""

    def __init__(self, n_dim: int, attentive: bool, heads: int):
        super().__init__(n_dim)
        self.attentive, self.heads = attentive, heads
        if attentive:
            self.to_q = nn.Linear(n_dim, n_dim, bias=False)
            self.to_k = nn.Linear(n_dim, n_dim, bias=False)
            self.to_v = nn.Linear(n_dim, n_dim, bias=False)

    def forward(self, x, attention_mask=None, y=None):
        if self.attentive:
            source = x if y is None else y
            b, t, d = x.shape
            q = self.to_q(x).view(b, t, self.heads, -1).transpose(1, 2)
            k = self.to_k(source).view(b, source.shape[1], self.heads, -1).transpose(1, 2)
            v = self.to_v(source).view(b, source.shape[1], self.heads, -1).transpose(1, 2)
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask).transpose(1, 2).reshape(b, t, d)
        return super().forward(x)


class Neuron(nn.Module):
    def __init__(self, n_dim: int, attentive: bool, heads: int, n_dendritics: int, n_synapses: int):
        super().__init__()
        self.attentive_neuron = attentive
        self.dendritics = nn.ModuleList([Unit(n_dim) for _ in range(n_dendritics)])
        self.soma = Soma(n_dim)
        self.axon = Axon(n_dim, attentive, heads)
        self.synapses = nn.ModuleList([Unit(n_dim) for _ in range(n_synapses)])
        self.ln = nn.LayerNorm(n_dim, bias=False)
        self.n_threshold = nn.Parameter(torch.tensor(0.5))
        self.neighbors: list[Neuron] = []
        self.activated = False

    def interact(self, x):
        for dendritic in self.dendritics:
            x = dendritic(x)
        return self.soma(x)

    def forward(self, x, increment, attention_mask=None, y=None):
        if self.activated:
            return x
        self.activated = True
        increment()
        x = x + self.axon(x, attention_mask, y)
        h = x
        for synapse in self.synapses:
            h = synapse(h)
        x = x + h
        return self.connect(x, increment)

    def connect(self, x, increment):
        candidates = [n for n in self.neighbors if not n.activated and not n.attentive_neuron]
        if not candidates:
            return x
        interactions = [n.interact(x) for n in candidates]
        best = max(range(len(candidates)), key=lambda i: interactions[i][1].item())  # first maximum
        neuron, voltages = candidates[best], interactions[best][0]
        passed = (voltages > neuron.n_threshold).view(-1, 1, 1)  # (B, 1, 1)
        if not passed.any():
            return x
        m = torch.where(passed, x, torch.zeros_like(x))
        p = neuron(m, increment)
        return torch.where(passed, m + self.ln(p), x)


class Indexer(nn.Module):
    def __init__(self, neurons: nn.ModuleList, n_attentive: int):
        super().__init__()
        self.neurons, self.n_attentive = neurons, n_attentive

    def forward(self, x):
        candidates = list(self.neurons)[: self.n_attentive] or list(self.neurons)
        means = [n.interact(x)[1].item() for n in candidates]
        return candidates[means.index(max(means))]


class Section(nn.Module):
    def __init__(self, config: dict, n_dim: int):
        super().__init__()
        a = config["n_attentive_neurons"]
        self.neurons = nn.ModuleList(
            Neuron(n_dim, j < a, config["n_attentive_neuron_heads"], config["n_dendritics"], config["n_synapses"])
            for j in range(config["n_neurons"])
        )
        self.indexer = Indexer(self.neurons, a)
        self.neuron_activation_count = 0

    def increment_neuron_count(self):
        self.neuron_activation_count += 1

    def forward(self, x, attention_mask=None):
        self.neuron_activation_count = 0
        neuron = self.indexer(x)
        x = neuron(x, self.increment_neuron_count, attention_mask)
        for n in self.neurons:
            n.activated = False
        return x, self.neuron_activation_count


class Reading(nn.Module):
    def __init__(self, n_dim: int, n_vocab_size: int, n_pos_size: int):
        super().__init__()
        self.wte = nn.Embedding(n_vocab_size, n_dim)
        self.wpe = nn.Embedding(n_pos_size, n_dim)
        self.fc_out = nn.Linear(n_dim, n_dim)
        self.ln = nn.LayerNorm(n_dim)
        self.act = nn.SiLU()

    def forward(self, input_ids):
        position_ids = torch.arange(0, input_ids.shape[-1], dtype=torch.long, device=input_ids.device)
        h = self.wte(input_ids) + self.wpe(position_ids.unsqueeze(0))
        return self.act(self.ln(self.fc_out(h)))


class Combiner(nn.Module):
    def __init__(self, n_dim: int):
        super().__init__()
        self.fc_out = nn.Linear(n_dim, n_dim)
        self.ln = nn.LayerNorm(n_dim)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.ln(self.fc_out(x)))


class CausalLM(nn.Module):
    def __init__(self, n_dim: int, n_vocab_size: int):
        super().__init__()
        self.lm_head = nn.Linear(n_dim, n_vocab_size)

    def forward(self, x):
        return self.lm_head(x)


class OriginalStyle(nn.Module):
    """The original's Genesis for a token-in, causal-LM-out config (its config.json dict)."""

    def __init__(self, config: dict):
        super().__init__()
        if (
            config.get("n_input") != "reading"
            or config.get("n_output") != "causal_lm"
            or config.get("n_cross_attention")
        ):
            raise ValueError("the original-style stand-in covers token input and a causal LM head only")
        n_dim, self.split = config["n_dim"], config["n_section"] == "split"
        inner = n_dim // config["n_sections"] if self.split else n_dim
        self.input = Reading(n_dim, config["n_vocab_size"], config["n_pos_size"])
        self.sections = nn.ModuleList(Section(config, inner) for _ in range(config["n_sections"]))
        if self.split:
            self.a_splits = nn.ModuleList(nn.Linear(n_dim, inner) for _ in range(config["n_sections"]))
            self.combiner = Combiner(n_dim)
        self.output = CausalLM(n_dim, config["n_vocab_size"])
        self.assign_neighbors(config["n_neighbors"], config["n_seed"])

    def assign_neighbors(self, n_neighbors: int, seed: int):
        rng = random.Random(seed)  # the original seeded Python's global generator the same way
        for section in self.sections:
            neurons = list(section.neurons)
            for j, neuron in enumerate(neurons):
                neuron.neighbors = rng.sample([n for i, n in enumerate(neurons) if i != j], n_neighbors)

    def forward(self, input_ids):
        """(logits (B, T, V), activation count); attention causal, as the golden LM cases were run."""
        h = self.input(input_ids)
        t = input_ids.shape[-1]
        mask = torch.ones(t, t, dtype=torch.bool, device=h.device).tril()
        total = 0
        if self.split:
            outs = []
            for section, split in zip(self.sections, self.a_splits):
                out, count = section(split(h), mask)
                outs.append(out)
                total += count
            h = self.combiner(torch.cat(outs, dim=-1))
        else:
            for section in self.sections:
                h, count = section(h, mask)
                total += count
        return self.output(h), total


def rebuild(config: dict, state: dict) -> OriginalStyle:
    """The stand-in (eval mode) holding an original-layout state dict, e.g. genesis.compat.to_original's."""
    with torch.device("meta"):  # no random init of weights that are replaced at once (199M for the original config)
        model = OriginalStyle(config)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
