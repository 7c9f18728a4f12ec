"""Plotly figures of a training run: loss curves and the routing over training. Pure functions,
events / snapshots in → figure out, each with a stable `uirevision` so zoom survives the reruns
that redraw them while training runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figure_style import PANEL_TITLE_SIZE, set_title
from .stat_figures import COUNT_SCALE, color
from .training import RouteSnapshot, TrainingEvent

TRAIN_COLOR = "#9ecae1"  # raw per-step loss: light, it is noisy
SMOOTH_COLOR = "#1f77b4"
VAL_COLOR = "#d62728"


def smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing)."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


def loss_figure(events: Sequence[TrainingEvent], uirevision: str = "loss") -> go.Figure:
    """Training loss per step (raw and smoothed) and validation loss at each evaluation."""
    steps = [e.step for e in events if e.train_loss is not None]
    train = [e.train_loss for e in events if e.train_loss is not None]
    evaluations = [e for e in events if e.val_loss is not None]
    fig = go.Figure(
        [
            go.Scatter(x=steps, y=train, name="train (per step)", mode="lines", line=dict(color=TRAIN_COLOR, width=1)),
            go.Scatter(x=steps, y=smooth(train), name="train (smoothed)", mode="lines", line=dict(color=SMOOTH_COLOR)),
            go.Scatter(
                x=[e.step for e in evaluations],
                y=[e.val_loss for e in evaluations],
                name="validation",
                mode="lines+markers",
                line=dict(color=VAL_COLOR),
            ),
        ]
    )
    fig.update_xaxes(title=dict(text="step"), rangemode="tozero")
    fig.update_yaxes(title=dict(text="loss (nats)"))
    fig.update_layout(
        uirevision=uirevision, height=360, margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", y=-0.25)
    )
    return set_title(fig, "Loss", top=50)


def routing_over_training(
    snapshots: Sequence[RouteSnapshot], kind: str = "firing", n_attentive: int = 0, uirevision: str = "routing"
) -> go.Figure:
    """One heatmap per section: neurons (rows) × evaluation steps (columns), the share of inputs
    whose route starts at (kind="start") or goes through (kind="firing") each neuron."""
    if kind not in ("start", "firing"):
        raise ValueError(f"kind must be 'start' or 'firing', got {kind!r}")
    sections = len(snapshots[0].firing) if snapshots else 0
    fig = make_subplots(
        rows=1, cols=max(sections, 1), subplot_titles=[f"section {s}" for s in range(sections)], shared_yaxes=True
    )
    steps = [str(s.step) for s in snapshots]
    for section in range(sections):
        values = [getattr(s, kind)[section] for s in snapshots]  # [evaluation][neuron]
        rows = len(values[0]) if kind == "firing" or not n_attentive else n_attentive
        z = [[v[neuron] for v in values] for neuron in range(rows)]
        labels = [f"n{j}" + (" (attentive)" if j < n_attentive else "") for j in range(rows)]
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=steps,
                y=labels,
                zmin=0,
                zmax=1,
                colorscale=COUNT_SCALE,
                showscale=section == 0,
                colorbar=dict(title=dict(text="share")),
                name=f"section {section}",
                hovertemplate="step %{x}, %{y}: %{z:.0%} of inputs<extra></extra>",
            ),
            row=1,
            col=section + 1,
        )
    fig.update_xaxes(title=dict(text="step"), type="category")
    fig.update_yaxes(autorange="reversed")
    fig.update_annotations(font=dict(size=PANEL_TITLE_SIZE))  # the subplot titles
    title = "Where routes start" if kind == "start" else "How often each neuron fires"
    fig.update_layout(
        uirevision=f"{uirevision}-{kind}",
        height=200 + 18 * (len(snapshots[0].firing[0]) if snapshots and kind == "firing" else 4),
        margin=dict(l=90, r=20, t=70, b=50),
    )
    return set_title(fig, f"{title}, at each evaluation", top=70)


def class_firing_figure(snapshot: RouteSnapshot, uirevision: str = "classes") -> go.Figure:
    """Firing frequency per neuron for each class at one evaluation: do classes route differently?"""
    fig = go.Figure()
    for index, (name, firing) in enumerate(snapshot.by_class.items()):
        labels = [f"s{s} n{j}" for s, section in enumerate(firing) for j in range(len(section))]
        fig.add_trace(
            go.Bar(x=labels, y=[v for section in firing for v in section], name=name, marker=dict(color=color(index)))
        )
    fig.update_yaxes(title=dict(text="share of inputs"), range=[0, 1])
    fig.update_layout(barmode="group", uirevision=uirevision, height=340, margin=dict(l=60, r=20, t=50, b=60))
    return set_title(fig, f"Neurons fired, by class (step {snapshot.step})", top=50)
