"""Graphs on their data: wiring nodes and edges, reachability against every possible route, the
route graph against the trace, the architecture from the config, GraphML export."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import genesis
from genesis import graphs
from genesis.modeling import neighbor_wiring


def every_route_visits(graph: nx.DiGraph, start: int) -> set[int]:
    """Brute force: walk every possible route (hop to any plain neighbor not fired yet)."""
    visited = set()

    def walk(neuron: int, fired: frozenset[int]) -> None:
        visited.add(neuron)
        for target in graph.successors(neuron):
            if graph.nodes[target]["kind"] == graphs.PLAIN and target not in fired:
                walk(target, fired | {target})

    walk(start, frozenset({start}))
    return visited


def test_wiring_graph_nodes_edges_and_attributes():
    config = genesis.preset("app")
    model = genesis.Genesis(config)
    for section in range(config.n_sections):
        graph = graphs.wiring_graph(model, section)
        assert graph.number_of_nodes() == config.n_neurons
        assert graph.number_of_edges() == config.n_neurons * config.n_neighbors
        for neuron, targets in enumerate(model.neighbor_lists()[section]):
            assert list(graph.successors(neuron)) == targets
            assert [graph.edges[neuron, t]["slot"] for t in targets] == list(range(len(targets)))
        kinds = [graph.nodes[n]["kind"] for n in range(config.n_neurons)]
        assert kinds == ["attentive"] * 4 + ["plain"] * 12
        assert all(graph.nodes[n]["threshold"] == 0.5 for n in graph)
        assert all(graph.nodes[n]["section"] == section for n in graph)
        assert all(graph.edges[e]["usable"] == (e[1] >= 4) for e in graph.edges)


def test_thresholds_of_the_wrong_length_are_refused():
    config = genesis.preset("tiny")
    with pytest.raises(ValueError, match=f"one value per neuron \\({config.n_neurons}\\), got 1"):
        graphs.wiring_graph(config, 0, thresholds=[0.1])  # used to be a bare IndexError


def test_wiring_from_config_equals_wiring_from_model_and_thresholds_follow_the_model():
    config = genesis.preset("tiny")
    model = genesis.Genesis(config)
    with torch.no_grad():
        model.sections[1].threshold[3] = 0.7
    from_model, from_config = graphs.wiring_graph(model, 1), graphs.wiring_graph(config, 1)
    assert list(from_model.edges) == list(from_config.edges)
    assert from_model.nodes[3]["threshold"] == pytest.approx(0.7)
    assert from_config.nodes[3]["threshold"] == 0.5
    assert graphs.wiring_graph(config, 1, [0.1] * 6).nodes[3]["threshold"] == 0.1
    with pytest.raises(ValueError, match="section"):
        graphs.wiring_graph(config, 2)


@settings(max_examples=60, deadline=None)
@given(
    neurons=st.integers(2, 8),
    attentive=st.integers(0, 3),
    neighbors=st.integers(0, 3),
    seed=st.integers(0, 10_000),
)
def test_reachability_equals_every_possible_route(neurons, attentive, neighbors, seed):
    attentive, neighbors = min(attentive, neurons), min(neighbors, neurons - 1)
    config = genesis.GenesisConfig(
        n_dim=8, n_sections=1, n_neurons=neurons, n_attentive_neurons=attentive, n_attentive_neuron_heads=1,
        n_neighbors=neighbors, n_vocab_size=8, n_pos_size=4, n_seed=seed,
    )  # fmt: skip
    graph = graphs.wiring_graph(config, 0)
    reach = graphs.reachability(graph)
    assert set(reach) == set(range(attentive or neurons))
    for start, reached in reach.items():
        assert reached == every_route_visits(graph, start)
    for neuron in graph:
        expected = sorted(s for s in reach if neuron in reach[s])
        assert graph.nodes[neuron]["reachable_from"] == expected
        assert graph.nodes[neuron]["unreachable"] == (not expected)
    assert graphs.unreachable_neurons(graph) == [n for n in graph if not graph.nodes[n]["reachable_from"]]


def test_sparse_wiring_has_unreachable_neurons():
    graph = graphs.wiring_graph(genesis.preset("tiny", n_neighbors=1), 1)
    assert graphs.unreachable_neurons(graph) == [2, 3, 4]  # 0 and 1 start; 1 → 5 → 0 and 0 → 1 only
    assert all(graph.nodes[n]["kind"] == "plain" for n in graphs.unreachable_neurons(graph))


def test_route_graph_follows_the_trace(lm_model, tokens):
    out = lm_model(tokens(4, 12), trace=True)
    for section in out.trace.sections:
        for sample in range(4):
            route = section.route_of(sample)
            graph = graphs.route_graph(section, sample)
            assert graphs.route_order(graph) == route
            assert [(a, b, graph.edges[a, b]["hop"]) for a, b in graph.edges] == graphs.route_edges(section, sample)
            assert graphs.route_edges(section, sample) == [
                (a, b, i + 1) for i, (a, b) in enumerate(zip(route, route[1:]))
            ]
            assert graph.graph["stop_reason"] == section.stop_reason
            assert graphs.route_order(graphs.route_graph(section, sample, hops=0)) == route[:1]
            wiring = graphs.wiring_graph(lm_model, section.section)
            assert all(wiring.has_edge(a, b) for a, b, _ in graphs.route_edges(section, sample))


@pytest.mark.parametrize(
    "overrides, sections, combiner",
    [({}, 2, True), ({"n_section": "sequential", "n_sections": 3}, 3, False), ({"n_cross_attention": True}, 2, True)],
)
def test_architecture_graph(overrides, sections, combiner):
    config = genesis.preset("app", **overrides)
    graph = graphs.architecture_graph(config)
    assert [n for n in graph if graph.nodes[n]["kind"] == "section"] == [f"section {i}" for i in range(sections)]
    assert ("combiner" in graph) == combiner
    assert nx.is_directed_acyclic_graph(graph)
    assert nx.has_path(graph, "input", "output")
    for i in range(sections):
        assert nx.has_path(graph, "input", f"section {i}") and nx.has_path(graph, f"section {i}", "output")
    assert ("y" in graph) == config.n_cross_attention


@pytest.mark.parametrize("mode", ["split", "sequential"])
def test_the_architecture_draws_y_into_the_sections_that_attend_to_it(mode):
    config = genesis.preset("tiny", n_cross_attention=True, n_section=mode, n_sections=3, n_dim=48)
    model = genesis.Genesis(config).eval()
    received = {}
    for i, section in enumerate(model.sections):  # what each section really receives
        section.register_forward_pre_hook(lambda _, args, i=i: received.__setitem__(i, args[1].y is not None))
    model(torch.randint(0, 256, (1, 8)), y=torch.randn(1, 8, config.n_dim))
    graph = graphs.architecture_graph(config)
    fed = {node for node in graph.successors("y")}
    drawn = {i: f"section {i}" in fed or f"split {i}" in fed for i in range(config.n_sections)}
    assert drawn == received == {i: True for i in range(3)}


def test_graphml_round_trip():
    config = genesis.preset("tiny")
    section_graphs = [graphs.wiring_graph(config, i) for i in range(config.n_sections)]
    text = graphs.to_graphml(section_graphs)
    back = nx.parse_graphml(text)
    assert back.number_of_nodes() == sum(g.number_of_nodes() for g in section_graphs)
    assert back.number_of_edges() == sum(g.number_of_edges() for g in section_graphs)
    wiring = neighbor_wiring(config)
    assert sorted(back.successors("s1n0"), key=lambda n: back.edges["s1n0", n]["slot"]) == [
        f"s1n{t}" for t in wiring[1][0]
    ]
    assert back.nodes["s0n0"]["kind"] == "attentive" and back.nodes["s0n5"]["kind"] == "plain"
    assert section_graphs[0].nodes[0]["reachable_from"] == [0]  # the source graph keeps its lists
