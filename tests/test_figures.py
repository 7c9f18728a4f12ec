"""Figures on their data (not pixels): edges and nodes drawn, stable colours and positions, the
route and its hop numbers, voltages against thresholds, parameter counts."""

from __future__ import annotations

import dataclasses
import math

import plotly.graph_objects as go
import pytest
import torch

import genesis
from genesis import figure_style, figures, graphs, probes
from genesis.configuration import parameter_breakdown


def named(fig: go.Figure, name: str):
    matches = [t for t in fig.data if t.name == name]
    assert matches, [t.name for t in fig.data]
    return matches[0]


def test_a_route_of_one_neuron_has_a_legend_entry():
    """A what-if that cuts the route to its start neuron drew an unexplained green ring."""
    graph = graphs.wiring_graph(genesis.preset("app"), 0)
    fig = figures.wiring_figure(graph, route=[1, 5, 9], other_route=[1])
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert "what-if route (its start neuron only)" in shown and "route" in shown
    assert "route (its start neuron only)" not in shown  # a route with hops has its edges in the legend


def test_wiring_figure_draws_every_edge_once_and_nodes_by_kind():
    config = genesis.preset("app")
    graph = graphs.wiring_graph(config, 0)
    fig = figures.wiring_figure(graph)
    edges = named(fig, "wiring")
    assert edges.x.count(None) == graph.number_of_edges()
    assert [tuple(e) for e in edges.meta["edges"]] == list(graph.edges)
    assert len(named(fig, "wiring arrows").x) == graph.number_of_edges()
    attentive, plain = named(fig, "attentive (start candidates)"), named(fig, "plain")
    assert list(attentive.customdata) == [0, 1, 2, 3] and list(plain.customdata) == list(range(4, 16))
    assert attentive.marker.color == figures.ATTENTIVE_COLOR and plain.marker.color == figures.PLAIN_COLOR
    assert fig.layout.uirevision == "wiring"
    assert fig.layout.yaxis.scaleanchor == "x"
    # segments start at their source's node, and stop short of the target along the same line
    pos = figures.circle_positions(list(graph))
    for i, (a, b) in enumerate(graph.edges):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        sx, sy, ex, ey = edges.x[3 * i], edges.y[3 * i], edges.x[3 * i + 1], edges.y[3 * i + 1]
        assert (sx, sy) == pytest.approx((x0, y0))
        assert math.hypot(x1 - ex, y1 - ey) == pytest.approx(figures.EDGE_GAP)
        assert abs((ex - x0) * (y1 - y0) - (ey - y0) * (x1 - x0)) < 1e-9  # collinear


def test_without_attentive_neurons_every_neuron_is_drawn_as_a_start_candidate():
    config = genesis.preset("app", n_attentive_neurons=0)
    graph = graphs.wiring_graph(config, 0)
    plain = named(figures.wiring_figure(graph), "plain (all start candidates: no attentive neurons)")
    assert list(plain.customdata) == list(range(16)) == graphs.start_neurons(config)


def test_positions_are_deterministic_and_start_at_the_top():
    pos = figures.circle_positions(range(8))
    assert pos == figures.circle_positions(list(reversed(range(8))))
    assert pos[0] == pytest.approx((0.0, 1.0)) and pos[2] == pytest.approx((1.0, 0.0))  # clockwise


def test_unreachable_neurons_get_their_own_symbol():
    graph = graphs.wiring_graph(genesis.preset("tiny", n_neighbors=1), 1)
    fig = figures.wiring_figure(graph)
    crosses = named(fig, "plain, unreachable")
    assert list(crosses.customdata) == graphs.unreachable_neurons(graph)
    assert crosses.marker.symbol == "x" and crosses.marker.color == figures.PLAIN_COLOR


def test_route_and_what_if_route_with_hop_numbers(lm_model, tokens):
    out = lm_model(tokens(1, 10), trace=True)
    section = out.trace.sections[0]
    route = section.route_of(0)
    graph = graphs.wiring_graph(lm_model, 0)
    fig = figures.wiring_figure(graph, graphs.route_graph(section), other_route=route[:1])
    line = named(fig, "route")
    assert line.meta["route"] == route
    assert line.x.count(None) == len(route) - 1 and line.line.color == figures.ROUTE_COLOR
    assert list(named(fig, "route hop numbers").text) == [str(h) for h in range(1, len(route))]
    assert named(fig, "what-if route").meta["route"] == route[:1]
    assert named(fig, "what-if route").line.dash == "dash"
    tried = figures.wiring_figure(graph, route[:1], not_fired=(route[0], 5))
    assert named(tried, "offered, did not fire").meta["edge"] == [route[0], 5]
    assert named(tried, "offered, did not fire").line.dash == "dot"
    same = figures.wiring_figure(graph, route)  # a list of neurons draws the same route as the route graph
    assert named(same, "route").x == line.x


def test_hop_step_figure_shows_voltages_against_the_threshold(lm_model, tokens):
    out = lm_model(tokens(3, 10), trace=True)
    section = next(s for s in out.trace.sections if s.hops)
    for sample in range(3):
        fig = figures.hop_step_figure(section, 0, sample, n_attentive=out.trace.attentive[section.section])
        bars = named(fig, "voltage")
        assert list(bars.customdata) == [c.neuron for c in section.indexer]
        assert list(bars.y) == [c.voltages[sample] for c in section.indexer]
        assert not fig.layout.shapes  # the indexer has no threshold
        assert list(named(fig, "batch mean (decides the choice)").y) == [c.mean_voltage for c in section.indexer]
        for step, hop in enumerate(section.hops, start=1):
            fig = figures.hop_step_figure(section, step, sample)
            bars = named(fig, "voltage")
            assert list(bars.y) == [c.voltages[sample] for c in hop.candidates]
            assert fig.layout.shapes[0].y0 == hop.threshold
            outline = list(bars.marker.line.color)
            assert outline[[c.neuron for c in hop.candidates].index(hop.chosen)] == figures.ROUTE_COLOR
            assert ("does not fire" in fig.layout.title.text) == (not hop.passed[sample])


def test_parameter_breakdown_and_architecture_figures():
    config = genesis.preset("app", n_cross_attention=True)
    bars = named(figures.parameter_breakdown_figure(config), "parameters")
    assert dict(zip(bars.y, bars.x)) == parameter_breakdown(config)
    fig = figures.architecture_figure(config)
    nodes = [n for trace in fig.data for n in trace.customdata]
    assert sorted(nodes) == sorted(graphs.architecture_graph(config).nodes)
    assert len(fig.layout.annotations) == graphs.architecture_graph(config).number_of_edges()
    assert fig.layout.uirevision == "architecture"


def test_output_figures(lm_model, tokens):
    ids = tokens(1, 6)[0].tolist()
    out = probes.run(lm_model, ids)
    top = probes.top_k_next(out, 5)
    fig = figures.top_k_figure([probes.token_label(t) for t, _ in top], [p for _, p in top])
    assert list(named(fig, "probability").x) == [p for _, p in top]
    assert list(named(figures.class_probability_figure([0.25]), "probability").y) == [0.75, 0.25]
    assert list(named(figures.class_probability_figure([0.2, 0.8], ["no", "yes"]), "probability").x) == ["no", "yes"]
    many = torch.softmax(torch.randn(5000, generator=torch.Generator().manual_seed(0)), 0).tolist()
    bars = figures.class_probability_figure(many)  # 5,000 bars (an app config allows 100,000) hung the browser
    likeliest = sorted(range(5000), key=lambda i: -many[i])[: figures.MAX_CLASS_BARS]
    assert list(named(bars, "probability").x) == [f"class {i}" for i in likeliest]
    assert "the 20 likeliest of 5,000" in bars.layout.title.text.replace("<br>", " ")
    assert bars.layout.yaxis.range[1] == pytest.approx(1.15 * many[likeliest[0]])  # not a flat row on [0, 1]
    result = probes.causality(lm_model, ids)
    heat = named(figures.causality_figure(result, [probes.token_label(t) for t in ids]), "causality")
    assert [list(row) for row in heat.z] == result.delta


# -- how titles, axes and heatmaps read (issue 3's visual nits) -------------------------------------

TEXTS = ["The cat sat on the mat.", "def add(a, b): return a + b", "1, 2, 3, 4, 5", "Hello, world!"]


def title_lines(fig: go.Figure) -> list[str]:
    return (fig.layout.title.text or "").split("<br>")


def axis_titles(fig: go.Figure) -> list[str]:
    axes = [fig.layout[name] for name in fig.layout if name.startswith(("xaxis", "yaxis"))]
    return [axis.title.text for axis in axes if axis.title.text]


def assert_fits(fig: go.Figure, width: int) -> None:
    """Plotly wraps neither titles nor axis titles: a line wider than the figure is cut off."""
    for line in title_lines(fig) + axis_titles(fig):
        assert len(line) <= width, (line, width)


def activation_heatmaps(run) -> list[go.Figure]:
    """The Activations page's heatmaps: firing (section × neuron), transitions, near misses."""
    from genesis import analysis, stat_figures

    return [
        stat_figures.firing_heatmap(analysis.firing_frequency(run, True), run.n_attentive),
        stat_figures.transition_heatmap(analysis.transition_matrix(run, 0), 0),
        stat_figures.near_miss_heatmap(analysis.near_miss(run), run.texts),
    ]


def every_figure(model, trace, ids) -> list[go.Figure]:
    """One figure from each builder in figures, stat_figures and training_figures."""
    from genesis import analysis, stat_figures, training_figures
    from genesis.training import RouteSnapshot, TrainingEvent

    section = next(s for s in trace.sections if s.hops)
    out = probes.run(model, ids)
    top = probes.top_k_next(out, 5)
    run = analysis.run_many(model, TEXTS)
    config, n = model.config, model.config.n_neurons
    snapshot = RouteSnapshot(
        step=10, samples=4, start=[[0.5] * n] * 2, firing=[[0.25] * n] * 2, route_length=[2.0, 2.0],
        distinct_routes=3, by_class={"0": [[0.5] * n] * 2, "1": [[0.1] * n] * 2},
    )  # fmt: skip
    events = [TrainingEvent(step, 10, 3.0 - step / 10, 1e-3, 100.0, step, 2.9, None, snapshot) for step in (0, 10)]
    comparison = analysis.compare_configs({"a": model, "b": model}, TEXTS, repeats=1)
    return [
        figures.wiring_figure(graphs.wiring_graph(model, 0), section.route_of(0)),
        figures.architecture_figure(config),
        figures.parameter_breakdown_figure(config),
        figures.hop_step_figure(section, 0),
        figures.hop_step_figure(section, 1),
        figures.top_k_figure([probes.token_label(t) for t, _ in top], [p for _, p in top]),
        figures.class_probability_figure([0.3]),
        figures.causality_figure(probes.causality(model, ids), [probes.token_label(t) for t in ids]),
        *activation_heatmaps(run),
        *(
            bars(table)
            for bars, table in (
                (stat_figures.start_bars, analysis.start_distribution(run)),
                (stat_figures.route_length_bars, analysis.route_lengths(run)),
                (stat_figures.stop_reason_bars, analysis.stop_reasons(run)),
                (stat_figures.balance_bars, analysis.balance(run)),
                (stat_figures.comparison_bars, comparison.table),
                (stat_figures.seed_stability_bars, analysis.seed_stability(model, [1, 2], TEXTS)),
            )
        ),
        training_figures.loss_figure(events),
        training_figures.routing_over_training([snapshot], "start", config.n_attentive_neurons),
        training_figures.routing_over_training([snapshot], "firing", config.n_attentive_neurons),
        training_figures.class_firing_figure(snapshot),
    ]


def test_every_title_has_the_same_style_and_fits_a_full_width_figure(lm_model, tokens):
    ids = tokens(1, 10)[0].tolist()
    drawn = every_figure(lm_model, lm_model(tokens(1, 10), trace=True).trace, ids)
    for fig in drawn:
        title = fig.layout.title
        assert title.text and "<b>" not in title.text  # the theme bolds titles: no double bold
        assert (title.font.size, title.x, title.xanchor) == (figure_style.TITLE_SIZE, 0, "left"), title.text
        for note in fig.layout.annotations:  # subplot titles among them: quieter than the figure's title
            assert (note.font.size or 0) < figure_style.TITLE_SIZE, (title.text, note.text)
    for fig in drawn:
        assert_fits(fig, figure_style.WIDE)


def test_figures_drawn_in_columns_have_titles_that_fit_a_column(lm_model, tokens):
    trace = lm_model(tokens(1, 10), trace=True).trace
    section = next(s for s in trace.sections if s.hops)
    narrow = [figures.hop_step_figure(section, step) for step in range(len(section.hops) + 1)]
    narrow += [figures.wiring_figure(graphs.wiring_graph(lm_model, 1)), figures.class_probability_figure([0.3])]
    narrow.append(figures.top_k_figure(["a", "b"], [0.6, 0.4]))
    for fig in narrow:
        assert_fits(fig, figure_style.NARROW)
    # a long title (a page's own, or a long model name on Compare) is wrapped, and the margin makes room
    long = "1: Fresh model from the Build config, trained for a while"
    short = figures.wiring_figure(graphs.wiring_graph(lm_model, 0), title="Section 0 wiring")
    wrapped = figures.wiring_figure(graphs.wiring_graph(lm_model, 0), title=long)
    assert_fits(wrapped, figure_style.NARROW)
    assert " ".join(title_lines(wrapped)) == long
    extra = figure_style.TITLE_LINE * (len(title_lines(wrapped)) - 1)
    assert wrapped.layout.margin.t == short.layout.margin.t + extra > short.layout.margin.t
    assert wrapped.layout.height == short.layout.height + extra  # the plot itself keeps its size


def test_voltage_axis_starts_at_zero_and_shows_the_threshold(lm_model, tokens):
    out = lm_model(tokens(2, 10), trace=True)
    section = next(s for s in out.trace.sections if s.hops)
    for step in range(len(section.hops) + 1):
        fig = figures.hop_step_figure(section, step, sample=1)
        low, high = fig.layout.yaxis.range
        assert low == 0 and high >= 1  # voltages are means of sigmoids: all of [0, 1], bars from zero
        if step:
            assert low < fig.layout.shapes[0].y0 < high
    # a trained threshold outside [0, 1] stays on the chart
    hop = section.hops[0]
    outside = dataclasses.replace(section, hops=[dataclasses.replace(hop, threshold=1.4)])
    low, high = figures.hop_step_figure(outside, 1).layout.yaxis.range
    assert low == 0 and high > 1.4


def test_activation_heatmaps_draw_section_zero_on_top_with_room_for_labels(lm_model):
    from genesis import analysis

    heatmaps = activation_heatmaps(analysis.run_many(lm_model, TEXTS))
    firing = heatmaps[0]
    assert list(firing.data[0].y)[0] == "section 0"  # the first row, drawn on top:
    for fig in heatmaps:
        assert fig.layout.yaxis.autorange == "reversed"  # plotly draws y upwards: row 0 would be at the bottom
        assert fig.layout.xaxis.automargin and fig.layout.yaxis.automargin  # labels get the room they need
        assert_fits(fig, figure_style.WIDE)


def test_outputs_that_are_not_numbers_are_said_not_drawn_empty():
    """A valid config can overflow to NaN (1024 neurons at n_dim 4: routes of 67 hops): the chart
    used to be blank, with nothing to say why."""
    nan = float("nan")
    for figure in (
        figures.top_k_figure(["a", "b"], [nan, nan]),
        figures.class_probability_figure([nan, nan, nan]),
        figures.class_probability_figure([nan]),
    ):
        notes = [a.text for a in figure.layout.annotations]
        assert any("NaN or infinite" in n for n in notes), notes
        assert figure.layout.xaxis.range is None or all(math.isfinite(v) for v in figure.layout.xaxis.range)
    for figure in (figures.top_k_figure(["a"], [0.5]), figures.class_probability_figure([0.2, 0.8])):
        assert not any("NaN" in (a.text or "") for a in figure.layout.annotations)
