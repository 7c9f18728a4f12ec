"""How a section routes a signal: the indexer picks a start neuron, then the signal hops to neighbors.

Three implementations, one contract (`router(section, x, ctx) -> (output, neurons fired)`, trace
events into `ctx.recorder`):

- `route_reference`: SPEC followed literally (recursion, whole batch, zeroed rows). The oracle.
- `route_batch`: the same numbers, fast: all candidates of a hop in one batched op, and only the
  rows of samples still alive (a stopped sample's zero row is known to have voltage 0.5).
- `route_sample`: per-sample routing; every sample takes its own path (as if alone) in the same
  batched ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .modeling import PassContext, Section, straight_through
from .trace import (
    STOP_ALL_FIRED,
    STOP_BELOW_THRESHOLD,
    STOP_NO_NEIGHBORS,
    Hop,
    SectionTrace,
    candidates_from,
)

STOPPED_VOLTAGE = 0.5  # sigmoid(0): every part is bias-free, so a zeroed row's voltage is exactly this


def start_candidates(section: Section) -> list[int]:
    """The indexer's choice: attentive neurons, or (this project's deviation) all when there are none."""
    return list(range(section.n_attentive or section.n_neurons))


def hop_candidates(section: Section, neuron: int, fired) -> tuple[list[int], str | None]:
    """Neighbors that may fire next, and why there are none when empty."""
    plain = [c for c in section.neighbors[neuron] if c >= section.n_attentive]
    candidates = [c for c in plain if c not in fired]
    if candidates:
        return candidates, None
    return candidates, (STOP_ALL_FIRED if plain else STOP_NO_NEIGHBORS)


def _record_section(ctx: PassContext, section: Section, trace: SectionTrace) -> None:
    if ctx.recorder is not None:
        ctx.recorder.sections.append(trace)
        ctx.recorder.attentive.append(section.n_attentive)


# ---------------------------------------------------------------------------------------------
# The oracle


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
        return connect(neuron, section.fire(x, neuron, fire_ctx), alive)

    def connect(neuron: int, x: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        candidates, reason = hop_candidates(section, neuron, order)
        if not candidates:
            stop.append(reason)
            return x
        voltages = [section.interact(x, c) for c in candidates]  # each (B,)
        means = torch.stack([v.mean() for v in voltages])
        best = int(means.argmax())  # first maximum: the earlier neighbor wins a tie
        chosen, threshold = candidates[best], section.threshold[candidates[best]]
        passed = (voltages[best] > threshold) & alive  # a stopped sample stays stopped (SPEC flaw 7)
        hops.append(
            Hop(
                neuron,
                candidates_from(candidates, [v.tolist() for v in voltages], means.tolist()),
                chosen,
                float(threshold),
                passed.tolist(),
                bool(passed.any()),
            )
        )
        if not passed.any():
            stop.append(STOP_BELOW_THRESHOLD)
            return x
        keep = passed[:, None, None]
        m = x * keep  # (B, T, D), non-passing rows zeroed
        contribution = section.connect_norm(fire(chosen, m, passed, None), neuron)
        if ctx.trainable:
            contribution = contribution * straight_through(voltages[best], threshold)[:, None, None]
        return torch.where(keep, m + contribution, x)

    candidates = start_candidates(section)
    voltages = [section.interact(x, c) for c in candidates]
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
    rows: torch.Tensor  # (R,) batch indices
    index: torch.Tensor | None  # positions of these rows within the previous step's rows
    gate: torch.Tensor | None  # straight-through factor per row (trainable routing)


def _fold(section: Section, steps: list[_Step]) -> torch.Tensor:
    """Undo the recursion: from the deepest neuron up, passing rows get + ln_source(result)."""
    p = steps[-1].x
    for step, below in zip(reversed(steps[:-1]), reversed(steps[1:])):
        source = step.neuron if isinstance(step.neuron, int) else step.neuron.index_select(0, below.index)
        contribution = section.connect_norm(p, source)
        if below.gate is not None:
            contribution = contribution * below.gate[:, None, None]
        p = step.x.index_add(0, below.index, contribution)  # (R, T, D)
    return p


def _full(values: torch.Tensor, rows: torch.Tensor, batch: int, fill: float) -> torch.Tensor:
    """Scatter per-row values (C, R) back to the batch (C, B), the rest filled."""
    full = values.new_full((values.shape[0], batch), fill)
    full[:, rows] = values
    return full


def _start_gate(ctx: PassContext, voltages: torch.Tensor) -> torch.Tensor | None:
    return straight_through(voltages, voltages.new_zeros(())) if ctx.trainable else None


def route_batch(section: Section, x: torch.Tensor, ctx: PassContext) -> tuple[torch.Tensor, int]:
    """The original's routing (choice by batch mean), computing only the rows still alive."""
    batch, recording = x.shape[0], ctx.recorder is not None
    candidates = start_candidates(section)
    voltages = section.interact_many(x, candidates)  # (C, B)
    means = voltages.mean(dim=1)
    start = candidates[int(means.argmax())]
    all_rows = torch.arange(batch, device=x.device)
    steps = [_Step(start, section.fire(x, start, ctx), all_rows, None, None)]
    order, alive_log, hops = [start], [[True] * batch], []
    stop = ""
    while True:
        step = steps[-1]
        neighbors, stop_reason = hop_candidates(section, step.neuron, order)
        if not neighbors:
            stop = stop_reason
            break
        live = section.interact_many(step.x, neighbors)  # (C, R)
        full = _full(live, step.rows, batch, STOPPED_VOLTAGE) if len(step.rows) < batch else live
        hop_means = full.mean(dim=1)  # stopped samples count with 0.5, as in the original
        best = int(hop_means.argmax())
        chosen = neighbors[best]
        threshold = section.threshold[chosen]
        index = (live[best] > threshold).nonzero().squeeze(1)
        if recording:
            passed = torch.zeros(batch, dtype=torch.bool)
            passed[step.rows[index].cpu()] = True
            hops.append(
                Hop(
                    step.neuron,
                    candidates_from(neighbors, full.tolist(), hop_means.tolist()),
                    chosen,
                    float(threshold),
                    passed.tolist(),
                    bool(len(index)),
                )
            )
        if not len(index):
            stop = STOP_BELOW_THRESHOLD
            break
        gate = straight_through(live[best].index_select(0, index), threshold) if ctx.trainable else None
        rows = step.rows.index_select(0, index)
        steps.append(_Step(chosen, section.fire(step.x.index_select(0, index), chosen, None), rows, index, gate))
        order.append(chosen)
        if recording:
            alive_log.append(hops[-1].passed)
    out = _fold(section, steps)
    if (gate := _start_gate(ctx, voltages[int(means.argmax())])) is not None:
        out = out * gate[:, None, None]
    if recording:
        if hops:
            hops[-1].stop_reason = stop
        indexer = candidates_from(candidates, voltages.tolist(), means.tolist())
        _record_section(
            ctx, section, SectionTrace(section.index, start, indexer, hops, order, alive_log, len(order), stop)
        )
    return out, len(order)


# ---------------------------------------------------------------------------------------------
# Per-sample routing


def _fire_start_per_row(section: Section, x: torch.Tensor, start: torch.Tensor, ctx: PassContext) -> torch.Tensor:
    """Each row fires its own start neuron (with attention mask and y), grouped by neuron."""
    out = torch.empty_like(x)
    for neuron in torch.unique(start).tolist():
        rows = (start == neuron).nonzero().squeeze(1)
        mask = ctx.attention_mask
        if mask is not None and mask.shape[0] > 1:
            mask = mask.index_select(0, rows)
        y = ctx.y.index_select(0, rows) if ctx.y is not None else None
        sub = PassContext(mask, y, None, ctx.trainable)
        out = out.index_copy(0, rows, section.fire(x.index_select(0, rows), neuron, sub))
    return out


def _candidate_voltages(
    section: Section, x: torch.Tensor, neighbors: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Voltage of every valid (row, neighbor slot), grouped by neuron; -inf where not a candidate."""
    voltages = torch.full(neighbors.shape, float("-inf"), dtype=x.dtype, device=x.device)
    for neuron in torch.unique(neighbors[valid]).tolist():
        rows, slots = ((neighbors == neuron) & valid).nonzero(as_tuple=True)
        v = section.interact_many(x.index_select(0, rows), [neuron])[0]  # (n,)
        voltages = voltages.index_put((rows, slots), v)
    return voltages


def route_sample(section: Section, x: torch.Tensor, ctx: PassContext) -> tuple[torch.Tensor, int]:
    """Every sample chooses its own start and candidates by its own voltage: as if run alone."""
    batch, n_attentive = x.shape[0], section.n_attentive
    candidates = start_candidates(section)
    voltages = section.interact_many(x, candidates)  # (C, B)
    start = torch.tensor(candidates, device=x.device)[voltages.argmax(dim=0)]  # (B,)
    rows = torch.arange(batch, device=x.device)
    fired = torch.zeros(batch, section.n_neurons, dtype=torch.bool, device=x.device)
    fired[rows, start] = True
    steps = [_Step(start, _fire_start_per_row(section, x, start, ctx), rows, None, None)]
    events = []  # per hop, for the trace
    while len(steps[-1].rows):
        step = steps[-1]
        neighbors = section.neighbor_table.index_select(0, step.neuron)  # (R, n_neighbors)
        plain = neighbors >= n_attentive
        valid = plain & ~fired[step.rows].gather(1, neighbors)
        hop_v = _candidate_voltages(section, step.x, neighbors, valid)  # (R, n_neighbors)
        best = hop_v.argmax(dim=1, keepdim=True)  # first maximum: earlier neighbor wins a tie
        chosen = neighbors.gather(1, best).squeeze(1) if neighbors.shape[1] else step.neuron
        chosen_v = hop_v.gather(1, best).squeeze(1) if neighbors.shape[1] else hop_v.new_full(step.rows.shape, -1.0)
        threshold = section.threshold.index_select(0, chosen)
        passed = valid.any(dim=1) & (chosen_v > threshold)
        events.append((step, neighbors, plain, valid, hop_v, chosen, threshold, passed))
        index = passed.nonzero().squeeze(1)
        if not len(index):
            break
        chosen = chosen.index_select(0, index)
        gate = (
            straight_through(chosen_v.index_select(0, index), threshold.index_select(0, index))
            if ctx.trainable
            else None
        )
        next_rows = step.rows.index_select(0, index)
        fired[next_rows, chosen] = True
        steps.append(_Step(chosen, section.fire_per_row(step.x.index_select(0, index), chosen), next_rows, index, gate))
    out = _fold(section, steps)
    if (gate := _start_gate(ctx, voltages.max(dim=0).values)) is not None:
        out = out * gate[:, None, None]
    if ctx.recorder is not None:
        _record_samples(ctx, section, candidates, voltages, start, steps, events, fired)
    return out, int(fired.any(dim=0).sum())


def _record_samples(ctx, section, candidates, voltages, start, steps, events, fired) -> None:
    """Per-sample traces (each as if alone) plus an aggregate view of the section."""
    batch = voltages.shape[1]
    v_all = voltages.T.tolist()  # (B, C)
    traces = []
    for b in range(batch):
        indexer = candidates_from(candidates, [[v] for v in v_all[b]], v_all[b])
        s = int(start[b])
        traces.append(SectionTrace(section.index, s, indexer, [], [s], [[True]], 1, "", sample=b))
    for step, neighbors, plain, valid, hop_v, chosen, threshold, passed in events:
        neighbors, plain, valid = neighbors.tolist(), plain.tolist(), valid.tolist()
        hop_v, chosen, threshold, passed = hop_v.tolist(), chosen.tolist(), threshold.tolist(), passed.tolist()
        for i, b in enumerate(step.rows.tolist()):
            trace = traces[b]
            names = [n for n, ok in zip(neighbors[i], valid[i]) if ok]
            if not names:
                trace.stop_reason = STOP_ALL_FIRED if any(plain[i]) else STOP_NO_NEIGHBORS
                continue
            volts = [v for v, ok in zip(hop_v[i], valid[i]) if ok]
            trace.hops.append(
                Hop(
                    trace.order[-1],
                    candidates_from(names, [[v] for v in volts], volts),
                    chosen[i],
                    threshold[i],
                    [passed[i]],
                    passed[i],
                )
            )
            if passed[i]:
                trace.order.append(chosen[i])
                trace.alive.append([True])
                trace.count += 1
            else:
                trace.stop_reason = STOP_BELOW_THRESHOLD
    for trace in traces:
        if trace.hops:
            trace.hops[-1].stop_reason = trace.stop_reason
        ctx.recorder.samples[trace.sample].append(trace)
    # Aggregate: neurons that fired for any sample, in the order they first fired.
    order = []
    for trace in traces:
        for step_index, neuron in enumerate(trace.order):
            order.append((step_index, neuron))
    order = list(dict.fromkeys(n for _, n in sorted(order)))
    fired_list = fired.tolist()
    alive = [[fired_list[b][n] and n in traces[b].order for b in range(batch)] for n in order]
    starts = [t.start for t in traces]
    common = max(sorted(set(starts)), key=starts.count)
    _record_section(ctx, section, SectionTrace(section.index, common, [], [], order, alive, len(order), "mixed"))


ROUTERS = {"batch": route_batch, "sample": route_sample, "reference": route_reference}
