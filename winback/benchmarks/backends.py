"""Where the tasks of a sweep or of a benchmark in user shards run: processes on this machine, or Ray
tasks on a local or existing cluster. Results come back in task order on either, so the same seeds
give the same numbers."""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, Literal

from winback.errors import ConfigError
from winback.progress import progress_bar
from winback.simulator.threads import one_thread_per_process


class Backend(ABC):
    """Runs a list of calls and returns their results in the list's order."""

    name = "local"
    workers: int | None = None
    """Parallel workers (None: whatever the cluster has)."""

    @abstractmethod
    def map(self, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]], label: str) -> list[Any]:
        """``[function(*args) for args in calls]``, computed in parallel, with a progress bar."""

    def close(self) -> None:
        return None


class LocalBackend(Backend):
    """Worker processes on this machine (spawned, one thread each); in-process with one worker."""

    def __init__(self, workers: int, *, progress: bool = True) -> None:
        if workers < 1:
            raise ConfigError(f"--workers = {workers} (allowed: >= 1)")
        self.workers, self.progress = workers, progress
        self._pool = None
        if workers > 1:
            self._pool = ProcessPoolExecutor(
                workers, mp_context=get_context("spawn"), initializer=one_thread_per_process
            )

    def map(self, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]], label: str) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        with progress_bar(enabled=self.progress) as bar:
            task = bar.add_task(label, total=len(calls))
            if self._pool is None:
                one_thread_per_process()
                for i, args in enumerate(calls):
                    results[i] = function(*args)
                    bar.advance(task)
                return results
            futures = {self._pool.submit(function, *args): i for i, args in enumerate(calls)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.advance(task)
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


class RayBackend(Backend):
    """Ray tasks of one CPU each: on the cluster at ``address``, or on a local Ray started (and
    stopped) here with ``workers`` CPUs."""

    name = "ray"

    def __init__(self, workers: int, *, address: str | None = None, progress: bool = True) -> None:
        import ray

        if workers < 1:
            raise ConfigError(f"--workers = {workers} (allowed: >= 1)")
        self.ray, self.progress, self._started = ray, progress, False
        self.workers = workers if address is None else None
        if address is not None:
            _check_reachable(address)
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            try:
                if address is None:
                    ray.init(num_cpus=workers, **options)
                else:
                    ray.init(address=address, **options)
            except ConnectionError as err:
                raise ConfigError(f"--ray-address {address!r}: cannot join the Ray cluster ({err})") from err
            self._started = True

    def map(self, function: Callable[..., Any], calls: Sequence[tuple[Any, ...]], label: str) -> list[Any]:
        remote = self.ray.remote(num_cpus=1)(_in_one_thread)
        refs = [remote.remote(function, *args) for args in calls]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        with progress_bar(enabled=self.progress) as bar:
            task = bar.add_task(label, total=len(refs))
            while pending:
                done, pending = self.ray.wait(pending, num_returns=1)
                for ref in done:
                    results[index[ref]] = self.ray.get(ref)
                    bar.advance(task)
        return results

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


CONNECT_SECONDS = 10.0
"""How long ``--ray-address`` may take to accept a connection (Ray itself retries for minutes)."""


def _check_reachable(address: str) -> None:
    """A ConfigError unless the head at ``address`` (``[ray://]host:port``; ``auto`` is left to Ray)
    accepts a TCP connection within :data:`CONNECT_SECONDS`."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r} (expected HOST:PORT, ray://HOST:PORT or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise ConfigError(f"--ray-address {address!r}: no Ray head answers there ({err})") from err


def make_backend(
    backend: Literal["local", "ray"], workers: int, *, address: str | None = None, progress: bool = True
) -> Backend:
    """The ``--backend`` with ``workers`` (and for Ray an existing cluster's ``address``)."""
    if backend == "local":
        if address is not None:
            raise ConfigError("--ray-address needs --backend ray")
        return LocalBackend(workers, progress=progress)
    if backend == "ray":
        return RayBackend(workers, address=address, progress=progress)
    raise ConfigError(f"--backend {backend!r} (allowed: 'local', 'ray')")


def default_workers() -> int:
    """Every CPU of this machine."""
    return os.cpu_count() or 1


def _in_one_thread(function: Callable[..., Any], *args: Any) -> Any:
    one_thread_per_process()
    return function(*args)
