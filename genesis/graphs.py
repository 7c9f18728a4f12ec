"""Graphs of a Genesis network as networkx DiGraphs: a section's wiring, what a route can reach, a
route on the wiring, and the architecture (input → splits → sections → combiner → output).

Pure functions of a config, a model or a trace; the figures in `genesis.figures` draw them.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import networkx as nx

from .configuration import GenesisConfig
from .trace import SectionTrace

if TYPE_CHECKING:  # the model code loads on first use: configs, their figures and files need none of it
    from .modeling import Genesis

ATTENTIVE, PLAIN = "attentive", "plain"
INITIAL_THRESHOLD = 0.5  # what a fresh model's thresholds are (a config alone carries no weights)


def _config_of(source: Genesis | GenesisConfig) -> GenesisConfig:
    return source if isinstance(source, GenesisConfig) else source.config


def start_neurons(config: GenesisConfig) -> list[int]:
    """Neurons the indexer may pick: the attentive ones, or every neuron when there are none."""
    return list(range(config.n_attentive_neurons or config.n_neurons))


def wiring_graph(
    source: Genesis | GenesisConfig, section: int = 0, thresholds: list[float] | None = None
) -> nx.DiGraph:
    """One section's wiring: a node per neuron, an edge neuron → neighbor (in neighbor-list order).

    Node attributes: section, neuron, kind ("attentive"/"plain"), threshold, start (the indexer may
    pick it), reachable_from (start neurons whose routes can reach it), unreachable. Edge attributes:
    slot (position in the neighbor list: the earlier one wins a tie), usable (a route can take it:
    routes only hop to plain neurons). Thresholds come from the model, or `thresholds`, or are the
    initial 0.5 of a fresh model.
    """
    from .modeling import Genesis, neighbor_wiring

    config = _config_of(source)
    if not 0 <= section < config.n_sections:
        raise ValueError(f"section must be in [0, {config.n_sections - 1}], got {section}")
    if isinstance(source, Genesis):
        neighbors = source.neighbor_lists()[section]
        thresholds = source.thresholds()[section] if thresholds is None else thresholds
    else:
        neighbors = neighbor_wiring(config)[section]
        thresholds = [INITIAL_THRESHOLD] * config.n_neurons if thresholds is None else thresholds
    if len(thresholds) != config.n_neurons:
        raise ValueError(f"thresholds must have one value per neuron ({config.n_neurons}), got {len(thresholds)}")
    attentive = config.n_attentive_neurons
    starts = set(start_neurons(config))
    graph = nx.DiGraph(section=section, n_attentive=attentive)
    for neuron in range(config.n_neurons):
        graph.add_node(
            neuron,
            section=section,
            neuron=neuron,
            kind=ATTENTIVE if neuron < attentive else PLAIN,
            threshold=float(thresholds[neuron]),
            start=neuron in starts,
        )
    for neuron, targets in enumerate(neighbors):
        for slot, target in enumerate(targets):
            graph.add_edge(neuron, target, slot=slot, usable=target >= attentive)
    _mark_reachability(graph)
    return graph


def reachable_from(graph: nx.DiGraph, start: int) -> set[int]:
    """Neurons a route starting at `start` can ever reach (itself included), whatever the voltages.

    A hop goes only to a plain neighbor that has not fired yet; any neuron reachable by a walk over
    usable edges is reachable by a path that repeats none, so a breadth-first search is exact.
    """
    seen, queue = {start}, deque([start])
    while queue:
        for target in graph.successors(queue.popleft()):
            if graph.nodes[target]["kind"] == PLAIN and target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def reachability(graph: nx.DiGraph) -> dict[int, set[int]]:
    """For each start neuron of the section, the neurons its routes can reach."""
    return {n: reachable_from(graph, n) for n, start in graph.nodes(data="start") if start}


def _mark_reachability(graph: nx.DiGraph) -> None:
    reach = reachability(graph)
    for neuron in graph.nodes:
        sources = sorted(start for start, reached in reach.items() if neuron in reached)
        graph.nodes[neuron]["reachable_from"] = sources
        graph.nodes[neuron]["unreachable"] = not sources


def unreachable_neurons(graph: nx.DiGraph) -> list[int]:
    """Neurons no route can ever reach from any start neuron: they can never fire."""
    return [n for n, flag in graph.nodes(data="unreachable") if flag]


# -- a route on the wiring --------------------------------------------------------------------


def route_edges(section: SectionTrace, sample: int = 0) -> list[tuple[int, int, int]]:
    """(source, target, hop number) for each hop this sample took, in order (hop 1 is the first)."""
    route = section.route_of(sample)
    return [(a, b, hop) for hop, (a, b) in enumerate(zip(route, route[1:]), start=1)]


def route_graph(section: SectionTrace, sample: int = 0, hops: int | None = None) -> nx.DiGraph:
    """The route of one sample as a path: nodes carry `order` (0 = start neuron), edges `hop`.

    `hops` keeps only the first hops (a step-through); why the route stopped is a graph attribute.
    """
    route = section.route_of(sample)[: None if hops is None else hops + 1]
    graph = nx.DiGraph(section=section.section, stop_reason=section.stop_reason, sample=sample)
    for order, neuron in enumerate(route):
        graph.add_node(neuron, order=order, section=section.section)
    for hop, (source, target) in enumerate(zip(route, route[1:]), start=1):
        graph.add_edge(source, target, hop=hop)
    return graph


def route_order(route: nx.DiGraph) -> list[int]:
    """The neurons of a route graph in firing order."""
    return sorted(route.nodes, key=lambda n: route.nodes[n]["order"])


# -- the architecture ---------------------------------------------------------------------------


def architecture_graph(config: GenesisConfig) -> nx.DiGraph:
    """input → (splits →) sections → (combiner →) output, generated from the config.

    Node attributes: kind (input/split/section/combiner/output), label, detail (one line of sizes),
    layer (left-to-right position), row (position within the layer).
    """
    graph = nx.DiGraph()
    d, inner, n = config.n_dim, config.inner_dim, config.n_sections
    section_detail = (
        f"{config.n_neurons} neurons ({config.n_attentive_neurons} attentive), width {inner}, "
        f"{config.n_neighbors} neighbors each"
    )
    input_detail = {
        "reading": f"token ids (vocab {config.n_vocab_size}) + positions (≤{config.n_pos_size}) → width {d}",
        "bridge": f"floats of width {d} → Linear + LayerNorm",
        "none": f"floats of width {d}, unchanged",
    }[config.n_input]
    output_detail = {
        "causal_lm": f"next-token logits over {config.n_vocab_size} tokens",
        "sequence_classifier": f"mean over positions → {config.n_outputs} class(es)",
        "bridge": f"floats of width {d}",
        "none": f"the sections' output, width {d}",
    }[config.n_output]
    graph.add_node("input", kind="input", label=f"input: {config.n_input}", detail=input_detail, layer=0, row=0)
    if config.n_section == "split":
        for i in range(n):
            graph.add_node(
                f"split {i}", kind="split", label=f"split {i}", detail=f"Linear {d} → {inner}", layer=1, row=i
            )
            graph.add_node(f"section {i}", kind="section", label=f"section {i}", detail=section_detail, layer=2, row=i)
            graph.add_edge("input", f"split {i}")
            graph.add_edge(f"split {i}", f"section {i}")
            graph.add_edge(f"section {i}", "combiner")
        graph.add_node(
            "combiner",
            kind="combiner",
            label="combiner",
            detail=f"concat {n}×{inner} → Linear {d} → {d}",
            layer=3,
            row=0,
        )
        last, output_layer = "combiner", 4
    else:
        previous = "input"
        for i in range(n):
            graph.add_node(
                f"section {i}", kind="section", label=f"section {i}", detail=section_detail, layer=1 + i, row=0
            )
            graph.add_edge(previous, f"section {i}")
            previous = f"section {i}"
        last, output_layer = previous, 1 + n
    graph.add_node(
        "output", kind="output", label=f"output: {config.n_output}", detail=output_detail, layer=output_layer, row=0
    )
    graph.add_edge(last, "output")
    if config.n_cross_attention:
        graph.add_node(
            "y", kind="input", label="y (cross-attention)", detail=f"second input, width {d}", layer=0, row=1
        )
        # Split: each section's split projects y too. Sequential: every section attends to y itself.
        targets = (
            [f"split {i}" for i in range(n)] if config.n_section == "split" else [f"section {i}" for i in range(n)]
        )
        for target in targets:
            graph.add_edge("y", target, cross=True)
    return graph


# -- export -------------------------------------------------------------------------------------


def to_graphml(graphs: list[nx.DiGraph]) -> str:
    """Section wiring graphs as one GraphML document (node ids "s{section}n{neuron}").

    GraphML holds only scalars, so lists become comma-separated strings.
    """
    combined = nx.DiGraph()
    for graph in graphs:
        section = graph.graph["section"]
        relabelled = nx.relabel_nodes(graph, {n: f"s{section}n{n}" for n in graph.nodes})
        for _, data in relabelled.nodes(data=True):
            for key, value in list(data.items()):
                if isinstance(value, (list, tuple)):
                    data[key] = ",".join(map(str, value))
        combined.update(relabelled)
    return "\n".join(nx.generate_graphml(combined))
