"""Aggregates over many inputs' routes: who fires, where routes start, how they hop, who almost
fired, how balanced the routing is, and how configurations compare.

`run_many` runs texts through a model and keeps every route as tidy pandas tables (an
`ActivationRun`); every other function reads those tables and returns a DataFrame or a number, so
each result can be drawn (`genesis.stat_figures`) or saved with `to_csv()`. No streamlit here.

Batching: the soma averages over every position, padding included, so a padded input would take a
different route than it does alone (and attention would see the pad rows as queries). Inputs are
therefore grouped by exact token count and never padded: each batch holds inputs of one length.
With per-sample routing (the default) every input then takes exactly the route it takes alone,
whatever else is in the run.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np
import pandas as pd
import torch

from .configuration import (
    INT_LIMITS,
    ROUTING_MODES,
    GenesisConfig,
    changed_fields,
    clip,
    fields_from_query,
    preset,
)
from .data import BYTE_IDS
from .modeling import Genesis
from .tokenization import encode_text
from .trace import RoutingTrace

Progress = Callable[[int, int], None]  # (inputs done, inputs in all)
Route = list[list[int]]  # per section, the neurons one input went through, in firing order

INPUT_COLUMNS = ["input", "text", "tokens", "truncated", "batch", "count"]
ROUTE_COLUMNS = ["input", "section", "step", "neuron"]
CANDIDATE_COLUMNS = [
    "input",
    "section",
    "hop",
    "source",
    "candidate",
    "voltage",
    "threshold",
    "margin",
    "chosen",
    "fired",
]


# ---------------------------------------------------------------------------------------------
# Running many inputs


@dataclass
class ActivationRun:
    """Routes of many inputs through one model, as tidy tables (one row per thing counted).

    inputs:     input, text, tokens, truncated, batch, count (neurons fired over all sections)
    sections:   input, section, start, length, stop_reason
    routes:     input, section, step, neuron (the neurons an input went through, in order)
    candidates: input, section, hop, source, candidate, voltage, threshold (the candidate's own),
                margin (voltage − threshold), chosen (won the vote), fired (chosen and passed)
    """

    inputs: pd.DataFrame
    sections: pd.DataFrame
    routes: pd.DataFrame
    candidates: pd.DataFrame
    n_sections: int
    n_neurons: int
    n_attentive: int
    routing: str

    @property
    def texts(self) -> list[str]:
        return self.inputs["text"].tolist()

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def n_start_candidates(self) -> int:
        """Neurons the indexer chooses from: the attentive ones, or all when there are none."""
        return self.n_attentive or self.n_neurons

    def route(self, input_index: int) -> Route:
        """One input's route: per section, the neurons it went through."""
        rows = self.routes[self.routes["input"] == input_index].sort_values(["section", "step"])
        return [rows.loc[rows["section"] == s, "neuron"].tolist() for s in range(self.n_sections)]

    def all_routes(self) -> list[Route]:
        grouped = self.routes.sort_values(["input", "section", "step"]).groupby(["input", "section"])["neuron"]
        table = {key: list(neurons) for key, neurons in grouped}
        return [[table.get((i, s), []) for s in range(self.n_sections)] for i in range(self.n_inputs)]


def runnable_problem(config: GenesisConfig) -> str | None:
    """Why texts cannot be run through this config (None when they can)."""
    if config.n_input != "reading":
        return f"n_input is {config.n_input!r}: only a model that reads token ids can run texts"
    if config.n_vocab_size < BYTE_IDS:
        return f"n_vocab_size is {config.n_vocab_size}: the byte tokenizer needs at least {BYTE_IDS}"
    return None


def with_fields(model: Genesis, **fields: Any) -> Genesis:
    """A copy of `model` in eval mode with some config fields changed and the same weights (the
    model itself when there is nothing to change and it is in eval mode already).

    Only for fields that keep every weight's shape (n_seed rewires; the routing mode needs no copy:
    `model(x, routing=...)`). The model itself is never touched (the app shares cached models
    across sessions).
    """
    if not fields and not model.training:
        return model
    # The whole config (class names, eos/pad ids), and the weights' dtype and device.
    config = GenesisConfig.from_dict({**model.config.to_dict(), **fields})
    weight = next(model.parameters())
    twin = Genesis(config, max_activation_bytes=None).to(weight.dtype)
    twin.load_state_dict(model.state_dict())
    return twin.to(weight.device).eval()


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by equal length, each group cut into batches of at most batch_size."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        groups.setdefault(length, []).append(index)
    return [
        members[start : start + batch_size]
        for _, members in sorted(groups.items())
        for start in range(0, len(members), batch_size)
    ]


def run_many(
    model: Genesis,
    texts: Iterable[str],
    batch_size: int = 16,
    progress: Progress | None = None,
    routing: str = "sample",
) -> ActivationRun:
    """Run every text (byte tokens, the last n_pos_size kept) and collect the routes.

    routing="sample": each input's own route, as if it ran alone (per-sample routing for these
    passes, the model untouched; a lone input of its length runs with batch routing, which gives
    the same route faster). routing="batch": the original's shared choice within each batch
    of equal-length inputs, so a route depends on which inputs share its batch.
    Raises ValueError (TextError) for an empty text or a model that cannot read texts.
    """
    if isinstance(texts, (str, bytes)):  # a string is iterable: it would run one text per character
        raise TypeError("texts must be a list of texts, not one text: run_many(model, [text])")
    texts = list(texts)
    if not texts:
        raise ValueError("no inputs: give at least one text")
    if problem := runnable_problem(model.config):
        raise ValueError(problem)
    if routing not in ROUTING_MODES:
        raise ValueError(f"routing must be one of {', '.join(map(repr, ROUTING_MODES))}, got {routing!r}")
    runner = with_fields(model)  # in eval mode
    encoded = [encode_text(text, model.config.n_pos_size) for text in texts]
    thresholds = model.thresholds()
    device = next(runner.parameters()).device
    inputs, sections, routes, candidates = [], [], [], []
    done = 0
    with torch.no_grad():
        for batch_number, batch in enumerate(length_batches([len(ids) for ids, _ in encoded], batch_size)):
            ids = torch.tensor([encoded[i][0] for i in batch], device=device)
            # A batch of one routes the same either way, and batch routing does it faster (no regrouping).
            trace = runner.routes(ids, routing="batch" if len(batch) == 1 else routing)
            routes.append(_renumber(trace.to_frame("route"), batch))
            candidates.append(_renumber(trace.to_frame("candidates"), batch))
            for b, index in enumerate(batch):
                row, section_rows = _input_rows(trace, b, index, encoded[index], batch_number)
                inputs.append(dict(row, text=texts[index]))
                sections += section_rows
            done += len(batch)
            if progress is not None:
                progress(done, len(texts))
    return ActivationRun(
        inputs=pd.DataFrame(inputs).sort_values("input").reset_index(drop=True)[INPUT_COLUMNS],
        sections=pd.DataFrame(sections).sort_values(["input", "section"]).reset_index(drop=True),
        routes=_inputs(routes).sort_values(["input", "section", "step"]).reset_index(drop=True)[ROUTE_COLUMNS],
        candidates=_with_margins(_inputs(candidates), thresholds),
        n_sections=model.config.n_sections,
        n_neurons=model.config.n_neurons,
        n_attentive=model.config.n_attentive_neurons,
        routing=routing,
    )


def _input_rows(
    trace: RoutingTrace, b: int, index: int, encoded: tuple[list[int], str | None], batch_number: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Sample b of a batch's trace as input `index`: its row and one row per section."""
    own = trace.sample_sections(b)
    lengths = [len(st.route_of(b)) for st in own]
    sections = [
        dict(input=index, section=st.section, start=st.start, length=length, stop_reason=st.stop_reason_of(b))
        for st, length in zip(own, lengths)
    ]
    row = dict(
        input=index, tokens=len(encoded[0]), truncated=encoded[1] is not None, batch=batch_number, count=sum(lengths)
    )
    return row, sections


def _renumber(frame: pd.DataFrame, batch: list[int]) -> pd.DataFrame:
    """A batch's `sample` numbers (0..B-1) to the run's input index, in place (renamed once, later)."""
    frame["sample"] = np.asarray(batch, dtype=int)[frame["sample"].to_numpy(dtype=int)]
    return frame


def _inputs(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames).rename(columns={"sample": "input"})


def _with_margins(frame: pd.DataFrame, thresholds: list[list[float]]) -> pd.DataFrame:
    """Every candidate's own threshold and margin (the trace keeps the threshold of the chosen only)."""
    frame = frame.reset_index(drop=True)
    threshold = [thresholds[s][n] for s, n in zip(frame["section"], frame["candidate"])]
    frame = frame.assign(threshold=threshold, fired=frame["chosen"] & frame["passed"])
    frame["margin"] = frame["voltage"] - frame["threshold"]
    return frame.sort_values(["input", "section", "hop", "candidate"]).reset_index(drop=True)[CANDIDATE_COLUMNS]


# ---------------------------------------------------------------------------------------------
# Counts over a run


def _count_table(frame: pd.DataFrame, rows: str, columns: str, row_values, column_values) -> pd.DataFrame:
    """How many rows of `frame` have each (rows, columns) pair, over the given values (0 when none)."""
    counts = (
        frame.groupby([rows, columns])
        .size()
        .unstack(fill_value=0)
        .reindex(index=row_values, columns=column_values, fill_value=0)
    )
    counts.index.name, counts.columns.name = rows, columns
    return counts


def firing_frequency(run: ActivationRun, normalize: bool = False) -> pd.DataFrame:
    """Section × neuron: how many inputs each neuron fired for (share of inputs with normalize)."""
    counts = _count_table(run.routes, "section", "neuron", range(run.n_sections), range(run.n_neurons))
    return counts / run.n_inputs if normalize else counts


def start_distribution(run: ActivationRun) -> pd.DataFrame:
    """Section × start candidate: how many inputs each section's route started at that neuron."""
    return _count_table(run.sections, "section", "start", range(run.n_sections), range(run.n_start_candidates))


def route_lengths(run: ActivationRun) -> pd.DataFrame:
    """Route length (neurons fired, 1..n_neurons) × section: how many inputs had that length."""
    return _count_table(run.sections, "length", "section", range(1, run.n_neurons + 1), range(run.n_sections))


def stop_reasons(run: ActivationRun) -> pd.DataFrame:
    """Section × reason: how many inputs' routes stopped for each reason."""
    reasons = sorted(run.sections["stop_reason"].unique())
    return _count_table(run.sections, "section", "stop_reason", range(run.n_sections), reasons)


def transitions(run: ActivationRun) -> pd.DataFrame:
    """Every hop that fired, counted: section, source, target, count (long form, CSV-friendly)."""
    routes = run.routes.sort_values(["input", "section", "step"])
    nxt = routes.groupby(["input", "section"])["neuron"].shift(-1)
    hops = routes.assign(target=nxt).dropna(subset=["target"]).rename(columns={"neuron": "source"})
    hops["target"] = hops["target"].astype(int)
    counts = hops.groupby(["section", "source", "target"]).size().rename("count").reset_index()
    return counts.astype({"section": int, "source": int, "target": int, "count": int})


def transition_matrix(run: ActivationRun, section: int) -> pd.DataFrame:
    """Source × target neuron counts of the hops that fired in one section."""
    if not 0 <= section < run.n_sections:
        raise ValueError(f"section must be in [0, {run.n_sections - 1}], got {section}")
    hops = transitions(run)
    hops = hops[hops["section"] == section]
    matrix = hops.pivot_table(index="source", columns="target", values="count", aggfunc="sum", fill_value=0)
    matrix = matrix.reindex(index=range(run.n_neurons), columns=range(run.n_neurons), fill_value=0).astype(int)
    matrix.index.name, matrix.columns.name = "source", "target"
    return matrix


def neuron_label(section: int, neuron: int) -> str:
    return f"s{section}:n{neuron}"


def near_miss(run: ActivationRun) -> pd.DataFrame:
    """Input × candidate (`s<section>:n<neuron>`): the candidate's best margin (voltage − threshold)
    for that input over the hops where it competed; NaN where it never competed.

    A positive margin on a neuron that did not fire means it lost the vote, not the threshold.
    """
    best = run.candidates.groupby(["input", "section", "candidate"])["margin"].max().reset_index()
    pairs = sorted(set(zip(best["section"], best["candidate"])))
    best["label"] = [neuron_label(s, n) for s, n in zip(best["section"], best["candidate"])]
    matrix = best.pivot(index="input", columns="label", values="margin")
    matrix = matrix.reindex(index=range(run.n_inputs), columns=[neuron_label(s, n) for s, n in pairs])
    matrix.index.name, matrix.columns.name = "input", "candidate"
    return matrix


def near_misses(run: ActivationRun, limit: int = 50) -> pd.DataFrame:
    """Candidates that did not fire, closest to firing first: who almost fired, for which input."""
    missed = run.candidates[~run.candidates["fired"]].sort_values("margin", ascending=False).head(limit)
    texts = run.inputs.set_index("input")["text"]
    return missed.assign(text=missed["input"].map(texts)).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Balance and diversity


def entropy(counts: Iterable[float]) -> float:
    """Shannon entropy in bits of a distribution given by counts (zeros ignored; 0 when empty)."""
    values = [float(c) for c in counts if c > 0]
    total = sum(values)
    return 0.0 if total <= 0 else max(0.0, -sum(c / total * math.log2(c / total) for c in values))


def balance(run: ActivationRun) -> pd.DataFrame:
    """Per section: entropy (bits) of the start neurons and of the firing counts, and their maxima.

    Maximal start entropy: every start candidate equally often. Maximal firing entropy: every
    neuron fires equally often. Low values mean a few neurons carry all inputs.
    """
    starts = start_distribution(run)
    firing = firing_frequency(run)
    return pd.DataFrame(
        dict(
            section=range(run.n_sections),
            start_entropy=[entropy(starts.loc[s]) for s in range(run.n_sections)],
            start_entropy_max=math.log2(run.n_start_candidates),
            firing_entropy=[entropy(firing.loc[s]) for s in range(run.n_sections)],
            firing_entropy_max=math.log2(run.n_neurons),
        )
    )


def route_string(route: Route) -> str:
    """'s0: 1→5→10 | s1: 2→7'."""
    return " | ".join(f"s{s}: " + "→".join(map(str, neurons)) for s, neurons in enumerate(route))


def route_keys(run: ActivationRun) -> list[str]:
    """Each input's whole route (all sections) as one string."""
    return [route_string(route) for route in run.all_routes()]


def route_table(run: ActivationRun, top: int = 20, examples: int = 3) -> pd.DataFrame:
    """The most common whole routes: route, count, share of inputs, neurons fired, example inputs."""
    keys = route_keys(run)
    texts = run.texts
    members: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        members.setdefault(key, []).append(index)
    ranked = sorted(members.items(), key=lambda item: (-len(item[1]), item[1][0]))[:top]
    rows = [
        dict(
            route=key,
            count=len(indices),
            share=len(indices) / len(keys),
            neurons=run.inputs.loc[indices[0], "count"],
            examples=" ⏐ ".join(clip(texts[i], 40) for i in indices[:examples]),
        )
        for key, indices in ranked
    ]
    return pd.DataFrame(rows, columns=["route", "count", "share", "neurons", "examples"])


def route_diversity(run: ActivationRun) -> float:
    """Entropy (bits) of the whole routes over the inputs: 0 when every input takes one route,
    log2(inputs) when every input takes its own."""
    return entropy(Counter(route_keys(run)).values())


# ---------------------------------------------------------------------------------------------
# Comparing configurations


def route_difference(route_a: Route | RoutingTrace, route_b: Route | RoutingTrace) -> pd.DataFrame:
    """Per section: the shared prefix length and the first step where two routes part.

    Traces are read as their first sample's route. first_divergent_step is the step index (0 = the
    start neuron) or missing when the routes are equal; neuron_a/neuron_b are the neurons there
    (missing on the side whose route already stopped).
    """
    a, b = _as_route(route_a), _as_route(route_b)
    rows = []
    for section in range(max(len(a), len(b))):
        ra = a[section] if section < len(a) else []
        rb = b[section] if section < len(b) else []
        shared = _shared_prefix(ra, rb)
        same = ra == rb
        rows.append(
            dict(
                section=section,
                route_a="→".join(map(str, ra)) if section < len(a) else f"(no section {section})",
                route_b="→".join(map(str, rb)) if section < len(b) else f"(no section {section})",
                shared_prefix=shared,
                first_divergent_step=None if same else shared,
                neuron_a=None if same or shared >= len(ra) else ra[shared],
                neuron_b=None if same or shared >= len(rb) else rb[shared],
                same=same,
            )
        )
    columns = ["section", "route_a", "route_b", "shared_prefix", "first_divergent_step", "neuron_a", "neuron_b", "same"]
    frame = pd.DataFrame(rows, columns=columns)  # the columns also when there are no sections
    return frame.astype({"first_divergent_step": "Int64", "neuron_a": "Int64", "neuron_b": "Int64"})


def _shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    shared = 0
    while shared < min(len(a), len(b)) and a[shared] == b[shared]:
        shared += 1
    return shared


def _as_route(route: Route | RoutingTrace) -> Route:
    return route.sample_routes()[0] if isinstance(route, RoutingTrace) else [list(r) for r in route]


def parameter_count(model: Genesis) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_latency(model: Genesis, text: str, repeats: int = 5) -> float:
    """Median milliseconds of one forward pass on one text (after one warm-up pass)."""
    runner = with_fields(model)  # in eval mode
    ids, _ = encode_text(text, model.config.n_pos_size)
    inputs = torch.tensor([ids], device=next(runner.parameters()).device)
    timings = []
    with torch.no_grad():
        runner(inputs)
        for _ in range(max(repeats, 1)):
            start = time.perf_counter()
            runner(inputs)
            timings.append(time.perf_counter() - start)
    return 1000 * statistics.median(timings)


@dataclass
class Comparison:
    """table: one row per configuration; runs: each one's ActivationRun over the same texts."""

    table: pd.DataFrame
    runs: dict[str, ActivationRun]


def compare_configs(
    items: Mapping[str, GenesisConfig | Genesis] | Sequence[GenesisConfig | Genesis],
    texts: Sequence[str],
    repeats: int = 5,
    progress: Progress | None = None,
) -> Comparison:
    """Parameters, forward latency, mean activation count and route diversity of each configuration.

    Items are configs (a fresh model is built, weights seeded by n_seed) or models (used as they are,
    never modified). Latency: median of `repeats` forwards of the median-length text, alone.
    """
    named = dict(items) if isinstance(items, Mapping) else {f"config {i + 1}": item for i, item in enumerate(items)}
    texts = list(texts)
    latency_text = sorted(texts, key=len)[len(texts) // 2] if texts else ""
    rows, runs = [], {}
    for number, (name, item) in enumerate(named.items()):
        model = item if isinstance(item, Genesis) else Genesis(item).eval()
        run = run_many(model, texts)
        runs[name] = run
        rows.append(
            dict(
                config=name,
                parameters=parameter_count(model),
                latency_ms=forward_latency(model, latency_text, repeats),
                mean_neurons_fired=float(run.inputs["count"].mean()),
                route_diversity=route_diversity(run),
                distinct_routes=len(set(route_keys(run))),
                inputs=run.n_inputs,
            )
        )
        if progress is not None:
            progress(number + 1, len(named))
    return Comparison(pd.DataFrame(rows), runs)


def parse_seeds(text: str, limit: int = 16) -> list[int]:
    """'1, 2 3' -> [1, 2, 3]: distinct integers in n_seed's range, at most `limit` of them; ValueError
    says why not."""
    seeds: list[int] = []
    for part in text.replace(",", " ").split():
        if not (part.isascii() and part.isdigit()):  # isdigit alone takes '²' and Arabic-Indic digits
            raise ValueError(
                f"seeds must be non-negative integers separated by commas or spaces, got {clip(repr(part), 40)}"
            )
        high = INT_LIMITS["n_seed"][1]
        if len(part) > 19 or int(part) > high:  # and int() refuses 4,300+ digits in its own words
            raise ValueError(f"seeds must be at most {high}, got {clip(part, 40)}")
        if int(part) not in seeds:
            seeds.append(int(part))
    if not seeds:
        raise ValueError("give at least one seed")
    if len(seeds) > limit:
        raise ValueError(f"at most {limit} seeds, got {len(seeds)}")
    return seeds


def seed_stability(
    model: GenesisConfig | Genesis, seeds: Iterable[int], texts: Sequence[str], batch_size: int = 16
) -> pd.DataFrame:
    """Rewire with each n_seed (same weights) and count the inputs whose route changes.

    The baseline is the model's own wiring (a config gets a fresh model). A seed equal to the
    model's own gives 0 changes; start neurons never depend on the wiring, hops do.
    mean_shared_steps: per input and section, how many first steps stay the same (the start, at
    least), averaged.
    """
    base = model if isinstance(model, Genesis) else Genesis(model).eval()
    reference = run_many(base, texts, batch_size=batch_size).all_routes()
    rows = []
    for seed in seeds:
        run = run_many(with_fields(base, n_seed=int(seed)), texts, batch_size=batch_size)
        routes = run.all_routes()
        changed = sum(a != b for a, b in zip(reference, routes))
        shared = [_shared_prefix(ra, rb) for a, b in zip(reference, routes) for ra, rb in zip(a, b)]
        rows.append(
            dict(
                seed=int(seed),
                changed=changed,
                changed_share=changed / len(routes),
                mean_shared_steps=statistics.fmean(shared),
                route_diversity=route_diversity(run),
                mean_neurons_fired=float(run.inputs["count"].mean()),
            )
        )
    columns = ["seed", "changed", "changed_share", "mean_shared_steps", "route_diversity", "mean_neurons_fired"]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------------------------------
# Shared app URLs


def app_defaults() -> dict[str, Any]:
    """The fields an app URL leaves out (it writes only those that differ from the app preset)."""
    return preset("app").user_dict()


def config_from_url(url: str, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Config fields from a shared app URL (or its query string), over the app's defaults.

    Parameters that are not config fields (text, source, ...) are ignored. Raises ValueError naming
    the field when a value has the wrong type, or saying so when the text is not a link at all; the
    caller validates the combination.
    """
    url = url.strip()
    parts = urlsplit(url)
    if "://" in url and parts.scheme not in ("http", "https"):
        raise ValueError(f"not a link from this app (it starts with {parts.scheme}://, not http:// or https://)")
    if url and "://" not in url and "=" not in url and not url.startswith("?"):
        raise ValueError(f"not a link from this app: {url[:60]!r} (one looks like http://host:8501/build?n_dim=64)")
    query = parts.query if ("?" in url or "://" in url) else url
    fields, bad = fields_from_query(parse_qs(query, keep_blank_values=True), defaults)
    if bad:
        raise ValueError(next(iter(bad.values())))
    return fields


def url_for_config(fields: Mapping[str, Any], base: str = "", defaults: Mapping[str, Any] | None = None) -> str:
    """An app URL with the fields that differ from the defaults (the inverse of config_from_url)."""
    changed = changed_fields(fields, defaults)
    return f"{base}?{urlencode(changed)}" if changed else base
