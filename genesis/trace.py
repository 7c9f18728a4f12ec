"""RoutingTrace: what the routing did in one forward pass, as plain data.

Plain dataclasses of ints, floats, bools and lists: no torch, JSON-serialisable, convertible to a
pandas table. The routing code fills them through a Recorder that exists only for one pass.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from .configuration import plural

# Why a route stopped.
STOP_NO_NEIGHBORS = "no plain neighbors"  # the last neuron is wired to attentive neurons only, or to none
STOP_ALL_FIRED = "all neighbors already fired"
STOP_BELOW_THRESHOLD = "chosen candidate below its threshold"  # only the chosen one is compared


@dataclass(slots=True)
class Candidate:
    """A neuron that competed: its batch-mean voltage and every sample's own voltage."""

    neuron: int
    mean_voltage: float
    voltages: list[float]


@dataclass(slots=True)
class Hop:
    """One connect step: `source` offered its candidates, `chosen` won; `passed` is per sample."""

    source: int
    candidates: list[Candidate]
    chosen: int | None
    threshold: float | None
    passed: list[bool]
    fired: bool  # whether `chosen` fired (some sample passed)
    stop_reason: str | None = None  # set on the last hop of a route


@dataclass(slots=True)
class SectionTrace:
    """The route of one section: start neuron, every hop, firing order and who was alive."""

    section: int
    start: int
    indexer: list[Candidate]
    hops: list[Hop]
    order: list[int]
    alive: list[list[bool]]
    count: int
    stop_reason: str
    sample: int | None = None  # per-sample routing: whose route this is

    def column(self, sample: int) -> int:
        """Where `sample` is in this trace's per-sample lists (0 in a per-sample trace of its own)."""
        if self.sample is not None:
            return 0
        samples = len(self.alive[0]) if self.alive else 0
        if not 0 <= sample < samples:  # -1 would silently read the last sample
            raise ValueError(f"sample must be in [0, {samples - 1}], got {sample}")
        return sample

    def route_of(self, sample: int) -> list[int]:
        """Neurons this sample went through, in firing order."""
        column = self.column(sample)
        return [neuron for neuron, alive in zip(self.order, self.alive) if alive[column]]

    def hops_of(self, sample: int) -> list[Hop]:
        """The hops offered to this sample: in batch routing the route goes on for the others after
        it stopped (its voltages there are those of a zero row, not its own)."""
        column = self.column(sample)
        return [hop for i, hop in enumerate(self.hops) if i == 0 or _alive_before(self, i, column)]

    def hop_at(self, step: int, sample: int = 0) -> Hop | None:
        """Hop `step` of this sample's route (None for step 0, the start). Refuses a step past the
        sample's own last hop."""
        hops = self.hops_of(sample)
        if not 0 <= step <= len(hops):
            raise ValueError(
                f"step must be in [0, {len(hops)}]: sample {sample}'s route in section {self.section} has "
                f"{plural(len(hops), 'hop')}, got {step}"
            )
        return hops[step - 1] if step else None

    def stop_reason_of(self, sample: int) -> str:
        """Why this sample's route stopped: its own failed hop, else the section's reason."""
        column = self.column(sample)
        own = self.hops_of(sample)
        return STOP_BELOW_THRESHOLD if own and not own[-1].passed[column] else self.stop_reason


@dataclass
class RoutingTrace:
    """All sections of one pass. In per-sample routing, `samples[b][i]` is sample b's own route."""

    mode: str
    batch_size: int
    sections: list[SectionTrace]
    samples: list[list[SectionTrace]] | None = None
    attentive: list[int] = field(default_factory=list)  # how many attentive neurons per section

    def sample_routes(self) -> list[list[list[int]]]:
        """For each sample, per section, the neurons it went through in order."""
        if self.samples is not None:
            return [[s.order for s in per_sample] for per_sample in self.samples]
        return [[s.route_of(b) for s in self.sections] for b in range(self.batch_size)]

    def sample_sections(self, sample: int) -> list[SectionTrace]:
        """The section traces that describe `sample` (its own in per-sample mode, the shared ones else)."""
        return self.samples[sample] if self.samples is not None else self.sections

    @property
    def count(self) -> int:
        return sum(s.count for s in self.sections)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoutingTrace:
        def section(d: dict[str, Any]) -> SectionTrace:
            hops = [Hop(**{**h, "candidates": [Candidate(**c) for c in h["candidates"]]}) for h in d["hops"]]
            return SectionTrace(**{**d, "hops": hops, "indexer": [Candidate(**c) for c in d["indexer"]]})

        samples = data.get("samples")
        return cls(
            mode=data["mode"],
            batch_size=data["batch_size"],
            sections=[section(s) for s in data["sections"]],
            samples=None if samples is None else [[section(s) for s in per] for per in samples],
            attentive=list(data.get("attentive", [])),
        )

    def to_frame(self, kind: str = "route"):
        """A tidy pandas table.

        kind="route": one row per (sample, section, step): the neuron it went through.
        kind="candidates": one row per (sample, section, hop, candidate): voltage, threshold, margin
        (hop 1 is the first, as in the walkthrough and the route graphs).
        """
        import pandas as pd

        rows: list[dict[str, Any]] = []
        for b in range(self.batch_size):
            for st in self.sample_sections(b):
                column = st.column(b)
                if kind == "route":
                    for step, neuron in enumerate(st.route_of(b)):
                        rows.append(dict(sample=b, section=st.section, step=step, neuron=neuron))
                elif kind == "candidates":
                    for hop_index, hop in enumerate(st.hops):
                        if column >= len(hop.passed) or (hop_index and not _alive_before(st, hop_index, column)):
                            continue  # the same test as hops_of, without building its list per sample
                        for c in hop.candidates:
                            rows.append(
                                dict(
                                    sample=b,
                                    section=st.section,
                                    hop=hop_index + 1,  # hop 1 is the first, as in the walkthrough
                                    source=hop.source,
                                    candidate=c.neuron,
                                    voltage=c.voltages[column],
                                    mean_voltage=c.mean_voltage,
                                    chosen=c.neuron == hop.chosen,
                                    threshold=hop.threshold if c.neuron == hop.chosen else None,
                                    passed=bool(hop.passed[column]) if c.neuron == hop.chosen else False,
                                )
                            )
                else:
                    raise ValueError(f"kind must be 'route' or 'candidates', got {kind!r}")
        columns = {
            "route": ["sample", "section", "step", "neuron"],
            "candidates": [
                "sample",
                "section",
                "hop",
                "source",
                "candidate",
                "voltage",
                "mean_voltage",
                "chosen",
                "threshold",
                "passed",
            ],
        }[kind]
        return pd.DataFrame(rows, columns=columns)


def _alive_before(st: SectionTrace, hop_index: int, column: int) -> bool:
    """Whether the sample was still alive when hop `hop_index` was offered."""
    return bool(st.alive[hop_index][column]) if hop_index < len(st.alive) else False


class Recorder:
    """Collects trace events during one pass. Created per call, never stored on a module."""

    def __init__(self, mode: str, batch_size: int):
        self.mode = mode
        self.batch_size = batch_size
        self.sections: list[SectionTrace] = []
        self.samples: list[list[SectionTrace]] | None = [[] for _ in range(batch_size)] if mode == "sample" else None
        self.attentive: list[int] = []

    def finish(self) -> RoutingTrace:
        return RoutingTrace(self.mode, self.batch_size, self.sections, self.samples, self.attentive)


_collector_lock = threading.Lock()
_collector_holders = 0
_collector_resume = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a trace is built.

    A per-sample trace of many inputs is hundreds of thousands of small objects and no reference
    cycles (refcounting frees them all). While they pile up, the collector runs dozens of times, and each full run walks
    every object in the process (350k with torch and transformers loaded): +40% on 512 per-sample
    routes. Threads share the pause: the first in pauses it (if it was on), the last out resumes it.
    """
    global _collector_holders, _collector_resume
    with _collector_lock:
        if _collector_holders == 0:
            _collector_resume = gc.isenabled()
            gc.disable()
        _collector_holders += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_holders -= 1
            if _collector_holders == 0 and _collector_resume:
                gc.enable()


def candidates_from(neurons: list[int], voltages: list[list[float]], means: list[float]) -> list[Candidate]:
    return [Candidate(int(n), float(m), [float(v) for v in vs]) for n, vs, m in zip(neurons, voltages, means)]
