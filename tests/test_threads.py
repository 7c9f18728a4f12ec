"""Session safety: forward passes on one shared model from several threads at once (SPEC flaw 5).

Each thread runs many passes on its own inputs (different batch sizes, lengths, tracing on or off)
and must get exactly what a pass alone gives; the model's state must be unchanged afterwards.
"""

from __future__ import annotations

import threading

import pytest
import torch

ITERATIONS = 10


def job(seed: int) -> dict:
    """A pass that differs per thread: batch size, length, tracing and labels."""
    g = torch.Generator().manual_seed(seed)
    batch, length = 1 + seed % 5, 3 + (seed * 7) % 13
    inputs = torch.randint(0, 256, (batch, length), generator=g)
    return dict(inputs=inputs, labels=inputs if seed % 2 else None, trace=seed % 3 != 0)


def snapshot(out) -> tuple:
    trace = out.trace.to_dict() if out.trace is not None else None
    loss = None if out.loss is None else out.loss.clone()
    return out.outputs.clone(), loss, out.neuron_activation_count, trace


def assert_same(got: tuple, expected: tuple) -> None:
    assert torch.equal(got[0], expected[0])
    assert (got[1] is None and expected[1] is None) or torch.equal(got[1], expected[1])
    assert got[2:] == expected[2:]


def run_together(passes: list) -> list[str]:
    """Run each callable ITERATIONS times in its own thread, all starting at once; the failures."""
    failures: list[str] = []
    barrier = threading.Barrier(len(passes))

    def worker(index: int) -> None:
        barrier.wait()  # all threads begin together so their passes overlap
        for iteration in range(ITERATIONS):
            try:
                passes[index]()
            except Exception as e:  # reported in the main thread: pytest does not see worker exceptions
                failures.append(f"thread {index}, iteration {iteration}: {type(e).__name__}: {e}")
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(passes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


@pytest.mark.parametrize("routing", ["batch", "sample"])
def test_threads_get_what_they_get_alone(make_model, routing):
    model = make_model(n_routing=routing)
    jobs = [job(seed) for seed in range(6)]
    with torch.no_grad():
        alone = [snapshot(model(**j)) for j in jobs]
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def check(index: int):
        def one_pass() -> None:
            with torch.no_grad():
                assert_same(snapshot(model(**jobs[index])), alone[index])

        return one_pass

    failures = run_together([check(i) for i in range(len(jobs))])
    assert not failures, failures[:3]
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_threads_mixing_implementations_and_gradients(make_model):
    """Reference and fast passes, with grad on (straight-through gates built), on one model."""
    model = make_model(n_trainable_routing=True, n_seed=4)
    inputs = [torch.randint(0, 256, (b, 6), generator=torch.Generator().manual_seed(b)) for b in (1, 3, 4, 6)]
    implementations = ["fast", "reference", "fast", "reference"]
    with torch.no_grad():
        expected = [snapshot(model(x, trace=True, implementation=i)) for x, i in zip(inputs, implementations)]

    def check(index: int):
        def one_pass() -> None:
            out = model(inputs[index], trace=True, implementation=implementations[index])
            assert_same(snapshot(out), expected[index])

        return one_pass

    failures = run_together([check(i) for i in range(len(inputs))])
    assert not failures, failures[:3]


class ParameterIndexing(torch.overrides.TorchFunctionMode):
    """Records Python indexing (`p[i]`) and `tolist()` of parameters: both keep the GIL while autograd
    locks the parameter, which deadlocks against a grad-enabled op in another thread (torch 2.13: that
    op holds the lock and waits for the GIL). The passes must use Tensor.select and friends instead."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.__getitem__, torch.Tensor.tolist) and isinstance(args[0], torch.nn.Parameter):
            self.calls.append(f"{func.__name__} of a {tuple(args[0].shape)} parameter")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("routing", ["batch", "sample"])
@pytest.mark.parametrize("grad", [False, True])
def test_passes_never_index_parameters_holding_the_gil(make_model, routing, grad):
    model = make_model(n_routing=routing, n_trainable_routing=True, n_cross_attention=False)
    inputs = torch.randint(0, 256, (3, 7), generator=torch.Generator().manual_seed(0))
    implementations = ["fast", "reference"] if routing == "batch" else ["fast"]
    with ParameterIndexing() as seen, torch.set_grad_enabled(grad):
        for implementation in implementations:
            out = model(inputs, labels=inputs, trace=True, implementation=implementation)
            assert out.neuron_activation_count > 1  # the route hopped: hop code ran too
        model.routes(inputs)
    assert not seen.calls, sorted(set(seen.calls))


def test_a_model_can_be_copied_while_other_threads_run_it():
    """The app copies a shared model for a session's what-if edits while other sessions run it. The
    passes fill per-model caches; a copy used to iterate them as they grew and fail with
    "dictionary changed size during iteration" (seen in the eight-session browser test)."""
    import copy
    import time

    import genesis

    model = genesis.Genesis(genesis.preset("app")).eval()  # 16 neurons, 4 neighbors: many candidate lists
    deadline = time.monotonic() + 3.0
    errors: list[str] = []

    def run(seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            while time.monotonic() < deadline:  # new inputs, new routes: the caches keep changing
                model(torch.randint(0, 256, (1, 16), generator=g))

    def copies() -> None:
        x = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(99))
        while time.monotonic() < deadline:
            try:
                twin = copy.deepcopy(model)
            except RuntimeError as e:
                errors.append(str(e))
                continue
            with torch.no_grad():  # a copy computes what the model computes
                assert torch.equal(twin(x).logits, model(x).logits)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(2)] + [threading.Thread(target=copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors[:3]


def test_building_models_and_sampling_text_leave_other_threads_draws_alone():
    """Building a model draws nothing from torch's global generator (it used to draw, then put the
    generator's state back: another thread's seeded draws in between were overwritten), and a seeded
    continuation draws from a generator of its own, so it is the same text whatever else runs."""
    import genesis
    from genesis import probes

    config = genesis.preset("tiny")
    model = genesis.Genesis(config).eval()
    ids = [72, 105, 33]
    text = probes.continuation(model, ids, 16, 0.9, 0.95, seed=3)
    torch.manual_seed(0)
    expected = torch.rand(50)
    stop = threading.Event()
    errors: list[str] = []

    def build() -> None:
        while not stop.is_set():
            genesis.Genesis(config)

    def seeded_draws() -> None:
        for _ in range(100):
            torch.manual_seed(0)
            if not torch.equal(torch.rand(50), expected):
                errors.append("a seeded draw changed while a model was built")
                return

    builder = threading.Thread(target=build)
    builder.start()
    try:
        seeded_draws()
        texts = {tuple(probes.continuation(model, ids, 16, 0.9, 0.95, seed=3)) for _ in range(2)}
    finally:
        stop.set()
        builder.join()
    assert not errors
    assert texts == {tuple(text)}
