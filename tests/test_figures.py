"""Figures on their data (not pixels): edges and nodes drawn, stable colours and positions, the
route and its hop numbers, voltages against thresholds, parameter counts."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest

import genesis
from genesis import figures, graphs, probes
from genesis.configuration import parameter_breakdown


def named(fig: go.Figure, name: str):
    matches = [t for t in fig.data if t.name == name]
    assert matches, [t.name for t in fig.data]
    return matches[0]


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
    result = probes.causality(lm_model, ids)
    heat = named(figures.causality_figure(result, [probes.token_label(t) for t in ids]), "causality")
    assert [list(row) for row in heat.z] == result.delta
