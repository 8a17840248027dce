"""Where the compiled simulator step runs: blocks of users on a thread pool, BLAS at one thread.

The compiled step (:mod:`winback.simulator.fused`) multiplies matrices through numba, which calls the
BLAS scipy ships (OpenBLAS here). OpenBLAS keeps its own thread pool, which ``torch.set_num_threads``
does not govern: left at its default of one thread per core, its threads compete with any other work
on the machine, and a step of 100k users ran 2.7 times slower beside a busy core
(``benchmarks/RESULTS.md``, simulator speed). So the simulator holds BLAS at one thread while it
steps a population of several blocks, and uses more cores by stepping blocks of users on threads of
its own (the compiled call releases the GIL). A single block (an environment's users) leaves BLAS as
the process set it: holding and restoring it costs ~20 us, a third of a 64-user step; processes that
share a machine should cap BLAS themselves (:func:`one_thread_per_process`, as the worker processes
of ``winback sweep`` and of several training seeds do).
Every process gets its own pool and controllers (a forked child included).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
from threadpoolctl import ThreadpoolController, threadpool_limits

_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_pins: dict[int, _BlasPin] = {}


def one_thread_per_process() -> None:
    """torch and BLAS at one thread in this process: for worker processes, which are the parallelism
    (a training run then sets torch's threads from its config)."""
    torch.set_num_threads(1)
    threadpool_limits(1)


def block_pool(threads: int) -> ThreadPoolExecutor:
    """This process's pool of ``threads`` threads for blocks of users."""
    key = (os.getpid(), threads)
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="winback-simulator")
    return _pools[key]


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS held at one thread inside; the previous setting is back after the last of nested or
    concurrent uses (from several threads) exits."""
    pid = os.getpid()
    if pid not in _pins:
        _pins[pid] = _BlasPin()
    pin = _pins[pid]
    pin.enter()
    try:
        yield
    finally:
        pin.exit()


class _BlasPin:
    def __init__(self) -> None:
        self.controllers = ThreadpoolController().select(user_api="blas").lib_controllers
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: list[int] = []

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                self.saved = [c.get_num_threads() for c in self.controllers]
                for controller, threads in zip(self.controllers, self.saved, strict=True):
                    if threads != 1:
                        controller.set_num_threads(1)
            self.depth += 1

    def exit(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                for controller, threads in zip(self.controllers, self.saved, strict=True):
                    if threads != 1:
                        controller.set_num_threads(threads)
