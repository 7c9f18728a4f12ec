"""How a section routes a signal: the indexer picks a start neuron, then the signal hops to neighbors.

Three implementations, one contract (`router(section, x, ctx) -> (output, neurons fired)`, trace
events into `ctx.recorder`):

- `route_reference`: SPEC followed literally (recursion, whole batch, zeroed rows, one candidate at a
  time, plain functional ops on each neuron's weights). The oracle: it shares no arithmetic helper
  with the fast paths, so an optimisation there cannot hide its own mistake.
- `route_batch`: the same numbers, fast: all candidates of a hop in one batched op, only the rows of
  samples still alive (a stopped sample's zero row is known to have voltage 0.5), no gathers while
  every row is alive, and no autograd graph for voltages that only choose and compare.
- `route_sample`: per-sample routing; every sample takes its own path (as if alone). Samples are
  processed in cache-sized chunks; in each hop the (sample, candidate) pairs are sorted by neuron so
  that each neuron runs once on all the rows that need it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .modeling import DROPOUT, PassContext, Section, UnitChain, norm_each, plus, plus_rows, straight_through
from .parallel import lanes_for, run_lanes
from .trace import (
    STOP_ALL_FIRED,
    STOP_BELOW_THRESHOLD,
    STOP_NO_NEIGHBORS,
    Candidate,
    Hop,
    SectionTrace,
    candidates_from,
    collector_paused,
)

STOPPED_VOLTAGE = 0.5  # sigmoid(0): every part is bias-free, so a zeroed row's voltage is exactly this
CHUNK_FLOATS = 1 << 19  # per-sample routing: samples per chunk so that a chunk's (R, T, D) is about 2 MiB
LANE_FLOATS = 1 << 18  # per-sample routing: from this much input (R * T * D) on, chunks share the CPU threads


def start_candidates(section: Section) -> tuple[int, ...]:
    """The indexer's choice: attentive neurons, or (this project's deviation) all when there are none."""
    return tuple(range(section.n_attentive or section.n_neurons))


def hop_candidates(section: Section, neuron: int, fired) -> tuple[tuple[int, ...], str | None]:
    """Neighbors that may fire next, and why there are none when empty."""
    plain = section.plain_neighbors[neuron]
    candidates = tuple(c for c in plain if c not in fired)
    if candidates:
        return candidates, None
    return candidates, (STOP_ALL_FIRED if plain else STOP_NO_NEIGHBORS)


def _record_section(ctx: PassContext, section: Section, trace: SectionTrace) -> None:
    if ctx.recorder is not None:
        ctx.recorder.sections.append(trace)
        ctx.recorder.attentive.append(section.n_attentive)


# ---------------------------------------------------------------------------------------------
# The oracle


def _unit(x: torch.Tensor, weight: torch.Tensor, norm: torch.Tensor, training: bool) -> torch.Tensor:
    """Linear (no bias) → LayerNorm (no bias) → SiLU → Dropout(0.1)."""
    return F.dropout(F.silu(F.layer_norm(F.linear(x, weight), norm.shape, norm)), DROPOUT, training)


def _chain(x: torch.Tensor, chain: UnitChain, neuron: int) -> torch.Tensor:
    for k in range(chain.n_units):
        x = _unit(
            x, chain.weight.select(0, neuron).select(0, k), chain.norm.select(0, neuron).select(0, k), chain.training
        )
    return x


def literal_interact(section: Section, x: torch.Tensor, neuron: int) -> torch.Tensor:
    """Dendrite chain, then the soma: sigmoid(w · mean_t h), per sample -> (B,)."""
    h = _chain(x, section.dendrites, neuron)  # (B, T, D)
    return torch.sigmoid(F.linear(h.mean(dim=1), section.soma.weight.narrow(0, neuron, 1))).squeeze(-1)


def literal_fire(section: Section, x: torch.Tensor, neuron: int, ctx: PassContext | None) -> torch.Tensor:
    """x + axon(x) (attention first for an attentive neuron), then + synapse chain."""
    a = x
    if neuron < section.n_attentive:
        a = section.attention.one(x, neuron, ctx and ctx.y, ctx and ctx.attention_mask)
    x = x + _chain(a, section.axon, neuron)  # (B, T, D)
    return x + _chain(x, section.synapses, neuron)


def route_reference(section: Section, x: torch.Tensor, ctx: PassContext) -> tuple[torch.Tensor, int]:
    """SPEC, literally: recursive firing on the whole batch, stopped samples as zero rows."""
    batch = x.shape[0]
    order: list[int] = []
    alive_log: list[list[bool]] = []
    hops: list[Hop] = []
    stop: list[str] = []

    def fire(neuron: int, x: torch.Tensor, alive: torch.Tensor, fire_ctx: PassContext | None) -> torch.Tensor:
        order.append(neuron)
        alive_log.append(alive.tolist())
        return connect(neuron, literal_fire(section, x, neuron, fire_ctx), alive)

    def connect(neuron: int, x: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        candidates, reason = hop_candidates(section, neuron, order)
        if not candidates:
            stop.append(reason)
            return x
        voltages = [literal_interact(section, x, c) for c in candidates]  # each (B,)
        means = torch.stack([v.mean() for v in voltages])
        best = int(means.argmax())  # first maximum: the earlier neighbor wins a tie
        chosen, threshold = candidates[best], section.threshold.select(0, candidates[best])
        passed = (voltages[best] > threshold) & alive  # a stopped sample stays stopped (SPEC flaw 7)
        hops.append(
            Hop(
                neuron,
                candidates_from(candidates, [v.tolist() for v in voltages], means.tolist()),
                chosen,
                float(threshold.detach()),
                passed.tolist(),
                bool(passed.any()),
            )
        )
        if not passed.any():
            stop.append(STOP_BELOW_THRESHOLD)
            return x
        keep = passed[:, None, None]
        m = x * keep  # (B, T, D), non-passing rows zeroed
        contribution = F.layer_norm(fire(chosen, m, passed, None), (m.shape[-1],), section.norm.select(0, neuron))
        if ctx.trainable:
            contribution = contribution * straight_through(voltages[best], threshold)[:, None, None]
        return torch.where(keep, m + contribution, x)

    candidates = start_candidates(section)
    voltages = [literal_interact(section, x, c) for c in candidates]
    means = torch.stack([v.mean() for v in voltages])
    start = candidates[int(means.argmax())]
    out = fire(start, x, torch.ones(batch, dtype=torch.bool, device=x.device), ctx)
    if ctx.trainable:
        out = out * straight_through(voltages[int(means.argmax())], section.threshold.new_zeros(()))[:, None, None]
    if hops:
        hops[-1].stop_reason = stop[0]
    indexer = candidates_from(candidates, [v.tolist() for v in voltages], means.tolist())
    _record_section(
        ctx,
        section,
        SectionTrace(section.index, start, indexer, hops, order, alive_log, len(order), stop[0] if stop else ""),
    )
    return out, len(order)


# ---------------------------------------------------------------------------------------------
# Fast, same numbers


@dataclass
class _Step:
    """One fired neuron on the rows still alive: rows[i] is the batch index of x[i]."""

    neuron: int | torch.Tensor  # int in batch routing; one neuron per row in per-sample routing
    x: torch.Tensor  # (R, T, D)
    rows: torch.Tensor | None  # (R,) batch indices; None: the whole batch, in order
    index: torch.Tensor | None  # positions of these rows within the previous step's rows; None: all of them
    gate: torch.Tensor | None  # straight-through factor per row (trainable routing)


def _voltages(section: Section, x: torch.Tensor, neurons: tuple[int, ...], ctx: PassContext) -> torch.Tensor:
    """Voltages (C, R) of candidates on x. Unless routing is trainable they only choose and compare, so
    no gradient can reach them: no graph is built (the same gradients, less work)."""
    if ctx.trainable or not torch.is_grad_enabled():
        return section.interact_many(x, neurons)
    with torch.no_grad():
        return section.interact_many(x, neurons)


def _fold(steps: list[_Step], connect: Callable) -> torch.Tensor:
    """Undo the recursion: from the deepest neuron up, passing rows get + ln_source(result)."""
    p = steps[-1].x
    for step, below in zip(reversed(steps[:-1]), reversed(steps[1:])):
        contribution = connect(p, step, below)
        if below.gate is not None:
            contribution = contribution * below.gate[:, None, None]
        p = plus(contribution, step.x) if below.index is None else plus_rows(step.x, below.index, contribution)
    return p  # (R, T, D)


def _select(t: torch.Tensor | None, index: torch.Tensor | None) -> torch.Tensor | None:
    """t[index] along the first axis, where None stands for "all rows" (index) or "the whole batch" (t)."""
    if index is None:
        return t
    return index if t is None else t.index_select(0, index)


def _start_gate(ctx: PassContext, voltages: torch.Tensor) -> torch.Tensor | None:
    return straight_through(voltages, voltages.new_zeros(())) if ctx.trainable else None


def route_batch(section: Section, x: torch.Tensor, ctx: PassContext) -> tuple[torch.Tensor | None, int]:
    """The original's routing (choice by batch mean), computing only the rows still alive."""
    batch, recording = x.shape[0], ctx.recorder is not None
    thresholds = section.threshold.detach().tolist()  # decisions in Python: fewer tiny tensor ops per hop
    candidates = start_candidates(section)
    voltages = _voltages(section, x, candidates, ctx)  # (C, B)
    means = voltages.mean(dim=1).tolist()
    first = _first_max(means)
    start = candidates[first]
    steps = [_Step(start, section.fire(x, start, ctx), None, None, None)]
    order, alive_log, hops, stop = [start], [[True] * batch], [], ""
    while True:
        step = steps[-1]
        neighbors, stop = hop_candidates(section, step.neuron, order)
        if not neighbors:
            break
        live = _voltages(section, step.x, neighbors, ctx)  # (C, R)
        full = live if step.rows is None else _full(live, step.rows, batch)  # stopped samples count with 0.5
        hop_means = full.mean(dim=1).tolist()
        best = _first_max(hop_means)
        chosen = neighbors[best]
        if batch == 1:  # the sample's voltage is the mean: it passes, or the route stops
            index = None if hop_means[best] > thresholds[chosen] else live.new_empty(0, dtype=torch.long)
        else:
            index = (live[best] > thresholds[chosen]).nonzero().squeeze(1)  # positions among the alive rows
        if recording:
            hops.append(_hop(step, neighbors, full, hop_means, chosen, thresholds[chosen], index, batch))
        if index is not None and not len(index):
            stop = STOP_BELOW_THRESHOLD
            break
        if index is not None and len(index) == live.shape[1]:
            index = None  # every alive row passes: no gathers
        gate = (
            straight_through(_select(live[best], index), section.threshold.select(0, chosen)) if ctx.trainable else None
        )
        fired_x = section.fire(_select(step.x, index), chosen, None)
        steps.append(_Step(chosen, fired_x, _select(step.rows, index), index, gate))
        order.append(chosen)
        if recording:
            alive_log.append(hops[-1].passed)
    out = _fold(steps, lambda p, step, below: section.connect_norm(p, step.neuron)) if ctx.outputs else None
    if out is not None and (gate := _start_gate(ctx, voltages[first])) is not None:
        out = out * gate[:, None, None]
    if recording:
        if hops:
            hops[-1].stop_reason = stop
        indexer = candidates_from(candidates, voltages.tolist(), means)
        _record_section(
            ctx, section, SectionTrace(section.index, start, indexer, hops, order, alive_log, len(order), stop)
        )
    return out, len(order)


def _first_max(values: list[float]) -> int:
    """Index of the first maximum (as torch.argmax: the earlier candidate wins a tie)."""
    return values.index(max(values))


def _full(values: torch.Tensor, rows: torch.Tensor, batch: int) -> torch.Tensor:
    """Per-row voltages (C, R) back on the batch (C, B); stopped samples' zero rows have 0.5."""
    full = values.new_full((values.shape[0], batch), STOPPED_VOLTAGE)
    full[:, rows] = values
    return full


def _hop(step: _Step, neighbors, full, means, chosen, threshold: float, index, batch: int) -> Hop:
    """The trace of one batch-routing hop; `index`: the passing positions among the alive rows (None: all)."""
    rows = _select(step.rows, index)  # batch indices of the passing rows; None: the whole batch
    if rows is None:
        passed = [True] * batch
    else:
        passed = [False] * batch
        for row in rows.tolist():
            passed[row] = True
    return Hop(step.neuron, candidates_from(neighbors, full.tolist(), means), chosen, threshold, passed, any(passed))


# ---------------------------------------------------------------------------------------------
# Per-sample routing


def _by_neuron(x: torch.Tensor, source: torch.Tensor, neuron_of_item: torch.Tensor, run: Callable) -> torch.Tensor:
    """run(x rows, neuron, rows) once per neuron: item i is x[source[i]] through neuron_of_item[i].

    Items are sorted by neuron (one gather), each neuron runs on its contiguous slice, and the results
    go back to item order.
    """
    order = torch.argsort(neuron_of_item, stable=True)
    neurons, counts = torch.unique_consecutive(neuron_of_item.index_select(0, order), return_counts=True)
    if len(neurons) == 1:  # one neuron for all (always so for a single sample): no sorting needed
        return run(x.index_select(0, source), int(neurons[0]), source)
    rows = source.index_select(0, order)
    x = x.index_select(0, rows)
    done, begin = None, 0
    for neuron, count in zip(neurons.tolist(), counts.tolist()):
        part = run(x[begin : begin + count], neuron, rows[begin : begin + count])
        if done is None:
            done = part.new_empty((len(order), *part.shape[1:]))
        done.index_copy_(0, order[begin : begin + count], part)  # straight to item order: no concatenation
        begin += count
    return done


def _rows_context(ctx: PassContext, rows: torch.Tensor | slice) -> PassContext:
    """The attention mask and y of some rows (an index tensor, or a slice for a chunk)."""
    pick = (lambda t: t[rows]) if isinstance(rows, slice) else (lambda t: t.index_select(0, rows))  # noqa: E731
    mask = ctx.attention_mask
    if mask is not None and mask.shape[0] > 1:  # (1, 1, T, T) when only causal: the same for every row
        mask = pick(mask)
    return PassContext(mask, None if ctx.y is None else pick(ctx.y), None, ctx.trainable, outputs=ctx.outputs)


def _pair_voltages(
    section: Section, x: torch.Tensor, neighbors: torch.Tensor, valid: torch.Tensor, ctx
) -> torch.Tensor:
    """Voltage of every valid (row, neighbor slot), each neuron once on its rows; -inf where not a candidate."""
    voltages = torch.full(neighbors.shape, float("-inf"), dtype=x.dtype, device=x.device)
    rows, slots = valid.nonzero(as_tuple=True)
    if not len(rows):
        return voltages

    def interact(h: torch.Tensor, neuron: int, _rows: torch.Tensor) -> torch.Tensor:
        return section.interact(h, neuron)

    if ctx.trainable or not torch.is_grad_enabled():
        values = _by_neuron(x, rows, neighbors[rows, slots], interact)
    else:
        with torch.no_grad():  # as in _voltages: only for choosing and comparing
            values = _by_neuron(x, rows, neighbors[rows, slots], interact)
    return voltages.index_put((rows, slots), values)


@dataclass
class _Chunk:
    """What per-sample routing did on a chunk of samples: output, fired neurons and trace events."""

    out: torch.Tensor | None  # (R, T, D); None when only the routes are wanted
    fired: torch.Tensor  # (R, N) bool
    voltages: torch.Tensor  # (C, R) of the start candidates
    start: torch.Tensor  # (R,)
    events: list


def _route_chunk(section: Section, x: torch.Tensor, ctx: PassContext) -> _Chunk:
    """Per-sample routing of some samples: each chooses its start and candidates by its own voltages."""
    batch, n_attentive = x.shape[0], section.n_attentive
    candidates = start_candidates(section)
    voltages = _voltages(section, x, candidates, ctx)  # (C, R)
    start = section.neuron_index(candidates, x.device)[voltages.argmax(dim=0)]  # (R,)
    rows = torch.arange(batch, device=x.device)
    fired = torch.zeros(batch, section.n_neurons, dtype=torch.bool, device=x.device)
    fired[rows, start] = True
    fire_start = lambda h, neuron, r: section.fire(h, neuron, _rows_context(ctx, r))  # noqa: E731
    steps = [_Step(start, _by_neuron(x, rows, start, fire_start), rows, None, None)]
    events = []  # per hop, for the trace
    while True:
        step = steps[-1]
        neighbors = section.neighbor_table.index_select(0, step.neuron)  # (R, n_neighbors)
        plain = neighbors >= n_attentive
        valid = plain & ~fired[step.rows].gather(1, neighbors)
        hop_v = _pair_voltages(section, step.x, neighbors, valid, ctx)  # (R, n_neighbors)
        if neighbors.shape[1]:
            best = hop_v.argmax(dim=1, keepdim=True)  # first maximum: earlier neighbor wins a tie
            chosen, chosen_v = neighbors.gather(1, best).squeeze(1), hop_v.gather(1, best).squeeze(1)
        else:  # no wiring at all: nothing to choose
            chosen, chosen_v = step.neuron, hop_v.new_full(step.rows.shape, -1.0)
        threshold = section.threshold.index_select(0, chosen)
        passed = valid.any(dim=1) & (chosen_v > threshold)
        events.append((step.rows, neighbors, plain, valid, hop_v, chosen, threshold, passed))
        index = passed.nonzero().squeeze(1)
        if not len(index):
            break
        chosen = chosen.index_select(0, index)
        gate = straight_through(chosen_v[index], threshold[index]) if ctx.trainable else None
        next_rows = step.rows.index_select(0, index)
        fired[next_rows, chosen] = True
        fire_hop = lambda h, neuron, r: section.fire(h, neuron, None)  # noqa: E731
        steps.append(_Step(chosen, _by_neuron(step.x, index, chosen, fire_hop), next_rows, index, gate))

    def connect(p: torch.Tensor, step: _Step, below: _Step) -> torch.Tensor:
        source = _select(step.neuron, below.index)  # the connecting neuron of each row
        return norm_each(p, section.norm.index_select(0, source).unsqueeze(1))

    out = _fold(steps, connect) if ctx.outputs else None
    if out is not None and (gate := _start_gate(ctx, voltages.max(dim=0).values)) is not None:
        out = out * gate[:, None, None]
    return _Chunk(out, fired, voltages, start, events)


def route_sample(section: Section, x: torch.Tensor, ctx: PassContext) -> tuple[torch.Tensor | None, int]:
    """Every sample chooses its own start and candidates by its own voltage: as if run alone.

    Samples are independent here, so they go in chunks that keep the working set in cache, on
    parallel lanes (genesis.parallel) when there are several CPU threads.
    """
    batch, length, dim = x.shape
    chunks_needed = math.ceil(batch / max(1, CHUNK_FLOATS // max(1, length * dim)))
    if chunks_needed == 1 and batch > 1 and batch * length * dim >= LANE_FLOATS:
        chunks_needed = 2  # enough work to share
    lanes = lanes_for(chunks_needed, x.device, deterministic=not section.training)
    size = math.ceil(batch / (lanes * math.ceil(chunks_needed / lanes)))  # as many chunks per lane
    if batch <= size:
        chunks = [_route_chunk(section, x, ctx)]
    else:
        starts = range(0, batch, size)

        def chunk(i: int) -> _Chunk:
            rows = slice(starts[i], starts[i] + size)
            return _route_chunk(section, x[rows], _rows_context(ctx, rows))

        chunks = run_lanes(chunk, len(starts), lanes)
    fired = torch.cat([c.fired for c in chunks]) if len(chunks) > 1 else chunks[0].fired
    if ctx.recorder is not None:
        traces, offset = [], 0
        with collector_paused():
            for chunk in chunks:
                traces += _sample_traces(section, chunk, offset)
                offset += len(chunk.start)
            _record_samples(ctx, section, traces, fired)
    out = torch.cat([c.out for c in chunks]) if len(chunks) > 1 and ctx.outputs else chunks[0].out
    return out, int(fired.any(dim=0).sum())


def _sample_traces(section: Section, chunk: _Chunk, offset: int) -> list[SectionTrace]:
    """Per-sample traces of a chunk (each as if alone); sample numbers start at `offset`."""
    # Hundreds of thousands of small objects for a large batch: built straight from tolist()'s
    # Python numbers (a sample's own voltage is its candidate's mean).
    candidates = start_candidates(section)
    v_all = chunk.voltages.T.tolist()  # (R, C)
    traces = []
    for b, start in enumerate(chunk.start.tolist()):
        indexer = [Candidate(n, v, [v]) for n, v in zip(candidates, v_all[b])]
        traces.append(SectionTrace(section.index, start, indexer, [], [start], [[True]], 1, "", sample=offset + b))
    for rows, neighbors, plain, valid, hop_v, chosen, threshold, passed in chunk.events:
        neighbors, plain, valid = neighbors.tolist(), plain.tolist(), valid.tolist()
        hop_v, chosen, threshold, passed = hop_v.tolist(), chosen.tolist(), threshold.tolist(), passed.tolist()
        for i, b in enumerate(rows.tolist()):
            trace = traces[b]
            offered = [Candidate(n, v, [v]) for n, v, ok in zip(neighbors[i], hop_v[i], valid[i]) if ok]
            if not offered:
                trace.stop_reason = STOP_ALL_FIRED if any(plain[i]) else STOP_NO_NEIGHBORS
                continue
            trace.hops.append(Hop(trace.order[-1], offered, chosen[i], threshold[i], [passed[i]], passed[i]))
            if passed[i]:
                trace.order.append(chosen[i])
                trace.alive.append([True])
                trace.count += 1
            else:
                trace.stop_reason = STOP_BELOW_THRESHOLD
    for trace in traces:
        if trace.hops:
            trace.hops[-1].stop_reason = trace.stop_reason
    return traces


def _record_samples(ctx: PassContext, section: Section, traces: list[SectionTrace], fired: torch.Tensor) -> None:
    """Each sample's own trace, plus an aggregate view of the section."""
    for trace in traces:
        ctx.recorder.samples[trace.sample].append(trace)
    # Aggregate: neurons that fired for any sample, in the order they first fired.
    order = []
    for trace in traces:
        for step_index, neuron in enumerate(trace.order):
            order.append((step_index, neuron))
    order = list(dict.fromkeys(n for _, n in sorted(order)))
    fired_list = fired.tolist()
    alive = [[fired_list[b][n] and n in traces[b].order for b in range(len(traces))] for n in order]
    starts = [t.start for t in traces]
    common = max(sorted(set(starts)), key=starts.count)
    _record_section(ctx, section, SectionTrace(section.index, common, [], [], order, alive, len(order), "mixed"))


ROUTERS = {"batch": route_batch, "sample": route_sample, "reference": route_reference}
