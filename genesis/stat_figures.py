"""Plotly figures for the aggregates in `genesis.analysis`: pure functions, table in → figure out.

Every figure sets `layout.uirevision` (zoom survives a rerun) and draws sections, configurations
and stop reasons in the same colours in every view.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .configuration import clip
from .figure_style import PANEL_TITLE_SIZE, set_title
from .trace import STOP_ALL_FIRED, STOP_BELOW_THRESHOLD, STOP_NO_NEIGHBORS

# Stable colours: section i (and configuration i) always gets PALETTE[i % len(PALETTE)].
PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#EECA3B", "#9D755D")
# Stop reasons share a tab with per-section bars: greys and hatching, so no reason looks like a section.
STOP_STYLES = {
    STOP_BELOW_THRESHOLD: dict(color="#3B3B3B"),
    STOP_ALL_FIRED: dict(color="#8C8C8C", pattern=dict(shape="/")),
    STOP_NO_NEIGHBORS: dict(color="#C7C7C7", pattern=dict(shape=".")),
}
COUNT_SCALE = "Viridis"
MARGIN_SCALE = "RdBu"  # diverging around 0: red below the threshold, blue above


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _layout(fig: go.Figure, title: str, revision: str, top: int = 50, **extra) -> go.Figure:
    fig.update_layout(uirevision=revision, margin=dict(l=60, r=20, t=top, b=50), **extra)
    # Margins grow to fit tick labels and axis titles (Streamlit's theme does so too; other renderers do not).
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return set_title(fig, title, top=top)


def firing_heatmap(frequency: pd.DataFrame, n_attentive: int = 0) -> go.Figure:
    """Section × neuron share of inputs each neuron fired for (firing_frequency(normalize=True))."""
    fig = go.Figure(
        go.Heatmap(
            z=frequency.to_numpy().tolist(),
            x=list(frequency.columns),
            y=[f"section {s}" for s in frequency.index],
            colorscale=COUNT_SCALE,
            zmin=0,
            colorbar=dict(title=dict(text="share")),
            hovertemplate="%{y}, neuron %{x}: fired for %{z:.0%} of inputs<extra></extra>",
        )
    )
    axis_title = "neuron"
    if 0 < n_attentive < len(frequency.columns):
        fig.add_vline(x=n_attentive - 0.5, line=dict(color="white", dash="dash"))
        axis_title = f"neuron (0–{n_attentive - 1}: attentive, left of the dashed line)"
    fig.update_xaxes(title=dict(text=axis_title), dtick=1)
    fig.update_yaxes(autorange="reversed")  # section 0 on top, as in every other view
    return _layout(fig, "How often each neuron fires", "firing", height=160 + 70 * len(frequency.index))


def _section_bars(table: pd.DataFrame, x_title: str, y_title: str, title: str, revision: str) -> go.Figure:
    """One bar trace per section (columns of a section-indexed or section-columned table)."""
    fig = go.Figure()
    for section, values in table.items():
        fig.add_trace(
            go.Bar(
                x=list(values.index),
                y=values.tolist(),
                name=f"section {section}",
                marker=dict(color=color(int(section))),
            )
        )
    fig.update_xaxes(title=dict(text=x_title), dtick=1)
    fig.update_yaxes(title=dict(text=y_title))
    return _layout(fig, title, revision, barmode="group")


def start_bars(starts: pd.DataFrame) -> go.Figure:
    """Start-neuron distribution (start_distribution: section × start candidate)."""
    return _section_bars(starts.T, "start neuron", "inputs", "Where routes start (the indexer's choice)", "starts")


def route_length_bars(lengths: pd.DataFrame) -> go.Figure:
    """Route-length histogram (route_lengths: length × section)."""
    return _section_bars(lengths, "neurons fired in the section", "inputs", "Route lengths", "lengths")


def stop_reason_bars(reasons: pd.DataFrame) -> go.Figure:
    """Why routes stopped (stop_reasons: section × reason), stacked per section."""
    fig = go.Figure()
    for reason, values in reasons.items():
        fig.add_trace(
            go.Bar(
                x=[f"section {s}" for s in values.index],
                y=values.tolist(),
                name=reason,
                marker=STOP_STYLES.get(reason, dict(color="#E0E0E0")),
            )
        )
    fig.update_yaxes(title=dict(text="inputs"))
    return _layout(fig, "Why routes stopped", "stops", barmode="stack")


def transition_heatmap(matrix: pd.DataFrame, section: int) -> go.Figure:
    """Hop counts source → target in one section (transition_matrix)."""
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy().tolist(),
            x=list(matrix.columns),
            y=list(matrix.index),
            colorscale=COUNT_SCALE,
            zmin=0,
            colorbar=dict(title=dict(text="hops")),
            hovertemplate="%{y} → %{x}: %{z} hops<extra></extra>",
        )
    )
    fig.update_xaxes(title=dict(text="to neuron"), dtick=1)
    fig.update_yaxes(title=dict(text="from neuron"), dtick=1, autorange="reversed")
    return _layout(fig, f"Hop transitions, section {section}", f"transitions-{section}")


def near_miss_heatmap(matrix: pd.DataFrame, texts: list[str] | None = None) -> go.Figure:
    """Input × candidate best margin (near_miss): blue fired or could have, red stayed below."""
    labels = [f"#{i} {clip(texts[i], 30)}" if texts else f"#{i}" for i in matrix.index]
    values = matrix.to_numpy()
    limit = float(pd.Series(abs(values.ravel())).max()) if values.size else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=[[None if pd.isna(v) else float(v) for v in row] for row in values],
            x=list(matrix.columns),
            y=labels,
            colorscale=MARGIN_SCALE,
            zmid=0,
            zmin=-limit,
            zmax=limit,
            colorbar=dict(title=dict(text="voltage − threshold")),
            hovertemplate="%{y}<br>%{x}: margin %{z:.4f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    height = min(1200, 160 + 18 * len(labels))
    return _layout(fig, "Near misses: each candidate's best margin per input", "near-miss", height=height)


def balance_bars(balance: pd.DataFrame) -> go.Figure:
    """Entropy of start neurons and of firing counts per section, with the maximum as a marker."""
    fig = go.Figure()
    sections = [f"section {s}" for s in balance["section"]]
    for index, (column, name) in enumerate((("start_entropy", "start neurons"), ("firing_entropy", "firing counts"))):
        group = dict(offsetgroup=column, legendgroup=column)  # the maximum marker sits on its own bar
        fig.add_trace(
            go.Bar(x=sections, y=balance[column].tolist(), name=name, marker=dict(color=color(index)), **group)
        )
        fig.add_trace(
            go.Scatter(
                x=sections,
                y=balance[f"{column}_max"].tolist(),
                mode="markers",
                name=f"{name}: maximum",
                marker=dict(symbol="line-ew-open", size=28, color=color(index), line=dict(width=3)),
                **group,
            )
        )
    fig.update_yaxes(title=dict(text="entropy (bits)"), rangemode="tozero")
    return _layout(
        fig, "Balance: entropy of start neurons and of firing counts", "balance", barmode="group", scattermode="group"
    )


def comparison_bars(table: pd.DataFrame) -> go.Figure:
    """compare_configs(...).table: parameters, latency, mean activation count, route diversity."""
    metrics = (
        ("parameters", "parameters"),
        ("latency_ms", "forward latency (ms)"),
        ("mean_neurons_fired", "mean neurons fired"),
        ("route_diversity", "route diversity (bits)"),
    )
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[title for _, title in metrics])
    colors = [color(i) for i in range(len(table))]
    for col, (metric, _) in enumerate(metrics, start=1):
        fig.add_trace(
            go.Bar(x=table["config"].tolist(), y=table[metric].tolist(), marker=dict(color=colors), showlegend=False),
            row=1,
            col=col,
        )
    fig.update_annotations(font=dict(size=PANEL_TITLE_SIZE))  # the subplot titles
    return _layout(fig, "Configurations side by side", "compare", top=75, height=380)


def seed_stability_bars(table: pd.DataFrame) -> go.Figure:
    """seed_stability: share of inputs whose route changes with each wiring seed."""
    seeds = [str(s) for s in table["seed"]]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=seeds,
            y=table["changed_share"].tolist(),
            name="inputs whose route changes",
            marker=dict(color=color(0)),
            hovertemplate="n_seed %{x}: %{y:.0%} of inputs change route<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=seeds,
            y=table["mean_shared_steps"].tolist(),
            name="steps still shared (mean per section)",
            mode="markers+lines",
            marker=dict(color=color(1), size=10),
            hovertemplate="n_seed %{x}: the first %{y:.2f} steps unchanged<extra></extra>",
        ),
        secondary_y=True,
    )
    fig.update_xaxes(title=dict(text="n_seed"), type="category")
    fig.update_yaxes(title=dict(text="inputs whose route changes"), range=[0, 1], tickformat=".0%", secondary_y=False)
    fig.update_yaxes(
        title=dict(text="steps still shared"), rangemode="tozero", tickformat=".1f", showgrid=False, secondary_y=True
    )
    return _layout(fig, "Wiring-seed stability", "seeds", legend=dict(orientation="h", y=-0.25))
