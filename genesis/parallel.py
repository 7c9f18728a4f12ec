"""Independent pieces of one pass (the sample chunks of per-sample routing) on parallel CPU threads.

Each lane is a thread with one intra-op thread of its own, instead of one stream of ops that each
split over all cores: no OpenMP barrier per op, which on a busy machine can cost a scheduler time
slice every time a core is taken by another process. torch releases the GIL inside its ops.

The pool is shared and a call waits only for its own tasks (no task waits for another), so passes
from several threads at once cannot deadlock; no per-pass state lives here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="genesis")
        return _pool


def lanes_for(tasks: int, device: torch.device, deterministic: bool = True) -> int:
    """Lanes for this many independent tasks: one per intra-op thread torch may use, on the CPU only,
    and none where the tasks draw random numbers (their order would decide what each one gets)."""
    if device.type != "cpu" or not deterministic:
        return 1
    return max(1, min(tasks, torch.get_num_threads()))


def run_lanes(work: Callable[[int], T], tasks: int, lanes: int) -> list[T]:
    """[work(0), ..., work(tasks - 1)] on `lanes` threads (the caller's is one), in task order.

    Every lane runs with the caller's grad and inference modes (thread-local in torch) and an equal
    share of its intra-op threads.
    """
    if lanes <= 1 or tasks <= 1:
        return [work(i) for i in range(tasks)]
    share = max(1, torch.get_num_threads() // lanes)
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def lane(first: int) -> list[T]:
        before = torch.get_num_threads()
        torch.set_num_threads(share)  # thread-local with torch's OpenMP backend
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                return [work(i) for i in range(first, tasks, lanes)]
        finally:
            torch.set_num_threads(before)

    others = [_shared_pool().submit(lane, first) for first in range(1, lanes)]
    results = [lane(0)] + [future.result() for future in others]
    return [results[i % lanes][i // lanes] for i in range(tasks)]
