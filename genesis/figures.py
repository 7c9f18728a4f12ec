"""Plotly figures from graphs, traces and results: pure functions, nothing shown, nothing stored.

Colours are stable across every view (attentive red, plain blue, the route orange); node positions
are deterministic (a circle, neuron 0 at the top, clockwise) so nothing jumps between reruns; every
figure has a `uirevision` so a user's zoom survives a redraw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import networkx as nx
import plotly.graph_objects as go

from .configuration import GenesisConfig, human, parameter_breakdown
from .figure_style import NARROW, WIDE, set_title
from .graphs import ATTENTIVE, PLAIN, architecture_graph, route_order
from .trace import SectionTrace

if TYPE_CHECKING:  # not imported: figures of a config need no model code (the app's first chart)
    from .probes import Causality

ATTENTIVE_COLOR = "#d62728"
PLAIN_COLOR = "#1f77b4"
ROUTE_COLOR = "#ff7f0e"
WHATIF_COLOR = "#2ca02c"
EDGE_COLOR = "#b0b0b0"
MUTED_COLOR = "#9e9e9e"
KIND_COLORS = {ATTENTIVE: ATTENTIVE_COLOR, PLAIN: PLAIN_COLOR}
ARCHITECTURE_COLORS = {
    "input": "#7f7f7f",
    "split": "#bcbd22",
    "section": PLAIN_COLOR,
    "combiner": "#9467bd",
    "output": "#2ca02c",
}
NODE_SIZE = 24
# Where an edge stops short of its target (in layout units, the circle has radius 1) so the arrow
# head is not hidden under the node marker.
EDGE_GAP = 0.1


def _layout(
    fig: go.Figure, title: str, uirevision: str, height: int = 420, title_width: int = NARROW, **kw
) -> go.Figure:
    """Common layout; `title_width`: NARROW for figures the pages draw in columns, WIDE for full width."""
    fig.update_layout(uirevision=uirevision, height=height, margin=dict(l=10, r=10, t=40, b=10), **kw)
    return set_title(fig, title, title_width)


# -- wiring -------------------------------------------------------------------------------------


def circle_positions(neurons: Sequence[int]) -> dict[int, tuple[float, float]]:
    """Neuron j at angle 90° - j·360°/N on the unit circle: the same place on every rerun."""
    count = max(len(neurons), 1)
    return {
        n: (math.cos(math.pi / 2 - 2 * math.pi * i / count), math.sin(math.pi / 2 - 2 * math.pi * i / count))
        for i, n in enumerate(sorted(neurons))
    }


def _segments(edges, pos, gap: float = EDGE_GAP):
    """x, y lists of all edges (None between them) and each edge's arrow head (position, angle)."""
    xs, ys, heads = [], [], []
    for a, b in edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        ex, ey = x1 - ux * gap, y1 - uy * gap
        xs += [x0, ex, None]
        ys += [y0, ey, None]
        heads.append((ex, ey, math.degrees(math.atan2(ux, uy))))  # plotly: degrees clockwise from up
    return xs, ys, heads


def _edge_traces(edges, pos, color: str, width: float, name: str, dash: str = "solid", **kw) -> list[go.Scatter]:
    xs, ys, heads = _segments(edges, pos)
    line = go.Scatter(
        x=xs, y=ys, mode="lines", line=dict(color=color, width=width, dash=dash), name=name, hoverinfo="skip", **kw
    )
    arrows = go.Scatter(
        x=[h[0] for h in heads],
        y=[h[1] for h in heads],
        mode="markers",
        marker=dict(symbol="arrow", angle=[h[2] for h in heads], size=6 + 2 * width, color=color),
        name=f"{name} arrows",
        showlegend=False,
        hoverinfo="skip",
    )
    return [line, arrows]


def _node_hover(graph: nx.DiGraph, neuron: int) -> str:
    data = graph.nodes[neuron]
    reach = data.get("reachable_from", [])
    return (
        f"neuron {neuron} ({data['kind']})<br>threshold {data['threshold']:.3f}"
        f"<br>neighbors {list(graph.successors(neuron))}"
        + (f"<br>reachable from start {reach}" if reach else "<br><b>unreachable</b>: no route gets here")
    )


def _node_trace(graph: nx.DiGraph, neurons: list[int], pos, name: str, color: str, symbol: str) -> go.Scatter:
    return go.Scatter(
        x=[pos[n][0] for n in neurons],
        y=[pos[n][1] for n in neurons],
        mode="markers+text",
        text=[str(n) for n in neurons],
        textfont=dict(color="white", size=10),
        customdata=neurons,
        hovertext=[_node_hover(graph, n) for n in neurons],
        hoverinfo="text",
        marker=dict(size=NODE_SIZE, color=color, symbol=symbol, line=dict(color="white", width=1)),
        name=name,
    )


def _route_traces(order: list[int], pos, color: str, name: str, dash: str) -> list[go.Scatter]:
    edges = list(zip(order, order[1:]))
    traces = _edge_traces(edges, pos, color, 4, name, dash, meta=dict(route=order))
    mid = [((pos[a][0] + pos[b][0]) / 2, (pos[a][1] + pos[b][1]) / 2) for a, b in edges]
    traces.append(
        go.Scatter(
            x=[m[0] for m in mid],
            y=[m[1] for m in mid],
            mode="markers+text",
            text=[str(hop) for hop in range(1, len(edges) + 1)],
            marker=dict(size=16, color="white", line=dict(color=color, width=2)),
            textfont=dict(color=color, size=11),
            name=f"{name} hop numbers",
            showlegend=False,
            hovertext=[f"hop {hop}: {a} → {b}" for hop, (a, b) in enumerate(edges, start=1)],
            hoverinfo="text",
        )
    )
    traces.append(
        go.Scatter(
            x=[pos[n][0] for n in order],
            y=[pos[n][1] for n in order],
            mode="markers",
            marker=dict(size=NODE_SIZE + 10, color="rgba(0,0,0,0)", line=dict(color=color, width=3)),
            # A route of one neuron has no edges to carry its legend entry: the ring carries it.
            name=f"{name} neurons" if edges else f"{name} (its start neuron only)",
            showlegend=not edges,
            hovertext=[f"step {i}: neuron {n}" for i, n in enumerate(order)],
            hoverinfo="text",
        )
    )
    return traces


def wiring_figure(
    graph: nx.DiGraph,
    route: Sequence[int] | nx.DiGraph | None = None,
    other_route: Sequence[int] | nx.DiGraph | None = None,
    title: str | None = None,
    uirevision: str = "wiring",
    height: int = 420,
    not_fired: tuple[int, int] | None = None,
) -> go.Figure:
    """A section's wiring: all edges in one trace, arrow heads, nodes by kind (unreachable ones as
    crosses), and optionally a route (neurons in firing order, or a graphs.route_graph) with hop
    numbers, a second route (the what-if) dashed in green, and a hop that was offered but did not
    fire (`not_fired`: source, candidate) dotted with a cross.

    The edge trace is named "wiring" (meta["edges"]: its (source, target) pairs in drawing order);
    the route's is named "route" (meta["route"]: the neurons in firing order).
    """
    pos = circle_positions(list(graph.nodes))
    edges = list(graph.edges)
    traces = _edge_traces(edges, pos, EDGE_COLOR, 1, "wiring", meta=dict(edges=[list(e) for e in edges]))
    attentive = [n for n, kind in graph.nodes(data="kind") if kind == ATTENTIVE]
    plain = [n for n, d in graph.nodes(data=True) if d["kind"] == PLAIN and not d.get("unreachable")]
    unreachable = [n for n, d in graph.nodes(data=True) if d["kind"] == PLAIN and d.get("unreachable")]
    traces.append(_node_trace(graph, attentive, pos, "attentive (start candidates)", ATTENTIVE_COLOR, "circle"))
    # Without attentive neurons the indexer picks among all of them: every neuron is a start candidate.
    plain_name = "plain" if attentive else "plain (all start candidates: no attentive neurons)"
    traces.append(_node_trace(graph, plain, pos, plain_name, PLAIN_COLOR, "circle"))
    if unreachable:
        traces.append(_node_trace(graph, unreachable, pos, "plain, unreachable", PLAIN_COLOR, "x"))
    for order, color, name, dash in (
        (route, ROUTE_COLOR, "route", "solid"),
        (other_route, WHATIF_COLOR, "what-if route", "dash"),
    ):
        order = route_order(order) if isinstance(order, nx.DiGraph) else list(order or [])
        if order:
            traces += _route_traces(order, pos, color, name, dash)
    if not_fired is not None:
        traces += _edge_traces(
            [not_fired], pos, ROUTE_COLOR, 2, "offered, did not fire", "dot", meta=dict(edge=list(not_fired))
        )
        (x0, y0), (x1, y1) = pos[not_fired[0]], pos[not_fired[1]]
        traces.append(
            go.Scatter(
                x=[(x0 + x1) / 2], y=[(y0 + y1) / 2], mode="markers", showlegend=False, hoverinfo="skip",
                marker=dict(symbol="x", size=12, color=ROUTE_COLOR), name="did not fire",
            )
        )  # fmt: skip
    fig = go.Figure(traces)
    axis = dict(visible=False, range=[-1.3, 1.3])
    section = graph.graph.get("section", 0)
    return _layout(
        fig,
        title or f"Section {section} wiring",
        uirevision,
        height,
        xaxis=axis,
        yaxis=dict(axis, scaleanchor="x", scaleratio=1),
        legend=dict(orientation="h", y=-0.02, yanchor="top"),
        plot_bgcolor="white",
    )


# -- architecture and parameters ------------------------------------------------------------------


def architecture_figure(config: GenesisConfig, uirevision: str = "architecture") -> go.Figure:
    """input → splits → sections → combiner → output, boxes left to right, generated from the config."""
    graph = architecture_graph(config)
    rows: dict[int, int] = {}
    for _, layer in graph.nodes(data="layer"):
        rows[layer] = rows.get(layer, 0) + 1
    pos = {n: (d["layer"], (rows[d["layer"]] - 1) / 2 - d["row"]) for n, d in graph.nodes(data=True)}
    fig = go.Figure()
    for kind, color in ARCHITECTURE_COLORS.items():
        nodes = [n for n, k in graph.nodes(data="kind") if k == kind]
        if not nodes:
            continue
        fig.add_trace(
            go.Scatter(
                x=[pos[n][0] for n in nodes],
                y=[pos[n][1] for n in nodes],
                mode="markers+text",
                marker=dict(symbol="square", size=46, color=color, opacity=0.85),
                text=[graph.nodes[n]["label"].replace(": ", ":<br>") for n in nodes],
                textposition="bottom center",
                hovertext=[f"<b>{graph.nodes[n]['label']}</b><br>{graph.nodes[n]['detail']}" for n in nodes],
                hoverinfo="text",
                name=kind,
                customdata=nodes,
            )
        )
    for a, b in graph.edges:
        fig.add_annotation(
            x=pos[b][0], y=pos[b][1], ax=pos[a][0], ay=pos[a][1], xref="x", yref="y", axref="x", ayref="y",
            showarrow=True, arrowhead=2, arrowsize=1.2, standoff=20, startstandoff=20, arrowcolor=MUTED_COLOR,
            text="",
        )  # fmt: skip
    layers = max(d for _, d in graph.nodes(data="layer"))
    height = max(rows.values())
    return _layout(
        fig,
        f"Architecture: {config.n_sections} sections ({config.n_section}), {human(sum(parameter_breakdown(config).values()))} parameters",
        uirevision,
        max(260, 110 * height + 90),
        WIDE,
        xaxis=dict(visible=False, range=[-0.5, layers + 0.5]),
        yaxis=dict(visible=False, range=[-height / 2 - 0.4, height / 2]),
        showlegend=False,
        plot_bgcolor="white",
    )


def parameter_breakdown_figure(config: GenesisConfig, uirevision: str = "parameters") -> go.Figure:
    """Parameters by part as horizontal bars, the total in the title."""
    parts = parameter_breakdown(config)
    names = list(parts)
    fig = go.Figure(
        go.Bar(
            x=[parts[n] for n in names],
            y=names,
            orientation="h",
            text=[human(parts[n]) for n in names],
            textposition="auto",
            marker_color=PLAIN_COLOR,
            name="parameters",
        )
    )
    return _layout(
        fig,
        f"Parameters: {human(sum(parts.values()))} in all",
        uirevision,
        320,
        WIDE,
        yaxis=dict(autorange="reversed"),
        xaxis=dict(title=dict(text="parameters")),
    )


# -- one route, step by step ----------------------------------------------------------------------


def hop_step_figure(
    section: SectionTrace, step: int, sample: int = 0, n_attentive: int | None = None, uirevision: str = "step"
) -> go.Figure:
    """Step 0: the indexer's vote (each start candidate's voltage). Step h ≥ 1: hop h, every
    candidate's voltage for this sample against the chosen one's threshold (dashed line). The
    voltage axis runs from 0 to 1 (a voltage is a sigmoid of a weighted mean), wider only for a threshold
    outside: bars from zero do not exaggerate small differences.

    Bars are coloured by neuron kind (`n_attentive`: the section's attentive count, by default all
    of the indexer's candidates); the chosen one has an orange outline. With several samples in the
    batch, diamonds mark the batch means that decided the choice.
    """
    column = section.column(sample)
    n_attentive = len(section.indexer) if n_attentive is None else n_attentive
    if step == 0:
        candidates, chosen, threshold = section.indexer, section.start, None
        title = f"Start: the indexer picks {section.start}"
    else:
        hop = section.hop_at(step, sample)
        candidates, chosen, threshold = hop.candidates, hop.chosen, hop.threshold
        verdict = "fires" if hop.passed[column] else "does not fire"
        title = f"Hop {step}: {hop.source} → {hop.chosen} {verdict}"
    names = [str(c.neuron) for c in candidates]
    voltages = [c.voltages[column] for c in candidates]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=voltages,
            marker=dict(
                color=[ATTENTIVE_COLOR if c.neuron < n_attentive else PLAIN_COLOR for c in candidates],
                line=dict(color=[ROUTE_COLOR if c.neuron == chosen else "white" for c in candidates], width=4),
            ),
            text=[f"{v:.3f}" for v in voltages],
            textposition="auto",  # inside the bar's top, clear of the threshold's label
            insidetextanchor="end",
            name="voltage",
            customdata=[c.neuron for c in candidates],
            hovertemplate="neuron %{x}<br>voltage %{y:.4f}<extra></extra>",
        )
    )
    if len(candidates) and len(candidates[0].voltages) > 1:
        fig.add_trace(
            go.Scatter(
                x=names,
                y=[c.mean_voltage for c in candidates],
                mode="markers",
                marker=dict(symbol="diamond", size=11, color="black"),
                name="batch mean (decides the choice)",
            )
        )
    if threshold is not None:
        # A layout shape, not add_hline: the same line for a fraction of the build time.
        fig.update_layout(
            shapes=[
                dict(type="line", xref="paper", x0=0, x1=1, y0=threshold, y1=threshold, line=dict(color=ROUTE_COLOR, dash="dash"))
            ],
            annotations=[
                dict(
                    xref="paper", x=0, y=threshold, yanchor="bottom", xanchor="left", showarrow=False,
                    text=f"threshold of {chosen}: {threshold:.3f}", font=dict(color=ROUTE_COLOR),
                    bgcolor="rgba(255,255,255,0.8)",
                )
            ],
        )  # fmt: skip
    shown = voltages + ([threshold] if threshold is not None else [])
    low, high = min([0.0, *shown]), max([1.0, *shown])  # a trained threshold may leave [0, 1]
    return _layout(
        fig,
        title,
        uirevision,
        340,
        xaxis=dict(title=dict(text=f"candidate neuron (section {section.section})"), type="category"),
        yaxis=dict(title=dict(text="voltage"), range=[low, high + 0.05 * (high - low)]),
        showlegend=len(fig.data) > 1,
        legend=dict(orientation="h", y=-0.25),
    )


# -- outputs --------------------------------------------------------------------------------------


def top_k_figure(labels: Sequence[str], probabilities: Sequence[float], uirevision: str = "topk") -> go.Figure:
    """The likeliest next tokens, likeliest at the top."""
    fig = go.Figure(
        go.Bar(
            x=list(probabilities),
            y=[f"{label} " for label in labels],  # a trailing space keeps '1' and 1 apart as categories
            orientation="h",
            text=[f"{p:.1%}" for p in probabilities],
            textposition="auto",
            marker_color=PLAIN_COLOR,
            name="probability",
        )
    )
    finite = [p for p in probabilities if math.isfinite(p)]
    fig = _layout(
        fig,
        "Next token",
        uirevision,
        60 + 26 * len(labels),
        yaxis=dict(autorange="reversed", type="category"),
        xaxis=dict(title=dict(text="probability"), range=[0, max(finite, default=1.0) * 1.2]),
    )
    return _say_if_not_finite(fig, probabilities)


def _say_if_not_finite(fig: go.Figure, values: Sequence[float]) -> go.Figure:
    """An empty chart would not say why: NaN outputs (weights or very long routes that overflow)."""
    if all(math.isfinite(v) for v in values):
        return fig
    fig.add_annotation(
        text="The model's outputs are NaN or infinite for this input:<br>there is nothing to rank.",
        xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font=dict(color=ROUTE_COLOR),
    )  # fmt: skip
    return fig


MAX_CLASS_BARS = 20


def class_probability_figure(
    probabilities: Sequence[float], labels: Sequence[str] | None = None, uirevision: str = "classes"
) -> go.Figure:
    """Class probabilities as bars (one output: the probability of class 1 and its complement); of
    many classes, the MAX_CLASS_BARS likeliest (100,000 bars took the browser minutes to draw)."""
    probabilities = list(probabilities)
    if len(probabilities) == 1:
        probabilities = [1 - probabilities[0], probabilities[0]]
    if not labels or len(labels) != len(probabilities):
        labels = [f"class {i}" for i in range(len(probabilities))]
    labels, title, top = list(labels), "Class probabilities", 1.0
    if len(probabilities) > MAX_CLASS_BARS:
        title = f"Class probabilities: the {MAX_CLASS_BARS} likeliest of {len(probabilities):,}"
        shown = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])[:MAX_CLASS_BARS]
        probabilities, labels = [probabilities[i] for i in shown], [labels[i] for i in shown]
        top = min(1.0, 1.15 * probabilities[0])  # of many classes the likeliest may all be near 0
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=probabilities,
            text=[f"{p:.1%}" for p in probabilities],
            textposition="auto",
            marker_color=PLAIN_COLOR,
            name="probability",
        )
    )
    fig = _layout(fig, title, uirevision, 300, yaxis=dict(range=[0, top], title=dict(text="probability")))
    return _say_if_not_finite(fig, probabilities)


def causality_figure(result: Causality, token_labels: Sequence[str], uirevision: str = "causality") -> go.Figure:
    """|Δ logits| at each position (columns) when the token at one position (rows) is replaced.

    Left of the diagonal is the past: a strictly causal model would be zero there. Rows marked ⟳
    changed the route, which is how a later token reaches earlier outputs (routing sees the whole text).
    """
    x = [f"{t}:{token_labels[t]}" for t in range(len(token_labels))]
    y = [
        f"{'⟳ ' if changed else ''}{k}:{token_labels[k]}" for k, changed in zip(result.positions, result.route_changed)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=result.delta,
            x=x,
            y=y,
            colorscale="Viridis",
            colorbar=dict(title=dict(text="|Δ logit|")),
            hovertemplate="replaced %{y}<br>position %{x}<br>max |Δ logit| %{z:.4f}<extra></extra>",
            name="causality",
        )
    )
    return _layout(
        fig,
        "How each position's output changes when one token is replaced",
        uirevision,
        max(300, 16 * len(y) + 140),
        WIDE,
        xaxis=dict(title=dict(text="output position"), type="category"),
        yaxis=dict(title=dict(text="replaced position (⟳: the route changed)"), autorange="reversed", type="category"),
    )
