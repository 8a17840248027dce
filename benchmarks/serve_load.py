"""Load test of ``winback serve`` on loopback: throughput and latency for batches of 1 and 256 users.

Exports a trained run (``--run-dir``; without one, trains a small MaskablePPO run first), starts
``winback serve`` on a free loopback port in a subprocess, waits for ``/healthz``, then sends
``POST /v1/decide`` from this process over one keep-alive connection:

- batch 1: at a fixed rate (``--rate`` requests/s) for ``--seconds``; latency is measured from each
  request's scheduled send time, so a slow answer that delays the next send counts against it
  (no coordinated omission);
- batch 256: back to back, ``--batch-requests`` requests (or ``--seconds``, whichever ends first).

Users are evaluation users of the run's scenario as the simulator observes them. Prints a markdown
table (requests, wall time, throughput, p50/p99/max latency, errors) and the load average.

    python benchmarks/serve_load.py --run-dir runs/mppo
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from winback.agents.training import TrainConfig, train
from winback.benchmarks.suite import sample_users
from winback.export.exporter import export_policy
from winback.scenarios.scenario import load_scenario
from winback.simulator.features import feature_names, observe

WARMUP = 50
"""Requests sent before measuring (not counted)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, help="training run to export (default: train a small one)")
    parser.add_argument("--rate", type=float, default=200.0, help="batch-1 requests per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="time bound of each test")
    parser.add_argument("--batch-requests", type=int, default=500, help="batch-256 requests")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        run = args.run_dir or small_run(Path(tmp) / "run")
        artifact = Path(tmp) / "export"
        export_policy(run, artifact, seeds=1, eval_users=200)
        scenario = load_scenario(json.loads((run / "config.json").read_text())["scenario"])
        simulator = scenario.simulator_for(0)
        users = sample_users(scenario.eval_users(), 2000, seed=0)
        names = feature_names(simulator)
        rows = [dict(zip(names, row.tolist(), strict=True)) for row in observe(simulator, users)]
        port = free_port()
        server = subprocess.Popen(serve_command(artifact, port))
        try:
            wait_healthy(port, server)
            load_before = os.getloadavg()
            single = _paced(port, rows, args.rate, args.seconds)
            batched = _back_to_back(port, rows, 256, args.batch_requests, args.seconds)
            load_after = os.getloadavg()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"run: {run}; {os.cpu_count()} cores; load average before {load_before}, after {load_after}\n")
    print("| batch | requests | seconds | requests/s | users/s | p50 ms | p99 ms | max ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch, result in ((1, single), (256, batched)):
        latency = np.array(result["latency"]) * 1e3
        n, seconds = len(latency), result["seconds"]
        print(
            f"| {batch} | {n} | {seconds:.1f} | {n / seconds:.1f} | {n * batch / seconds:.0f} | "
            f"{np.percentile(latency, 50):.2f} | {np.percentile(latency, 99):.2f} | {latency.max():.2f} | "
            f"{result['errors']} |"
        )
    if single["errors"] or batched["errors"]:
        sys.exit(1)


def small_run(out: Path) -> Path:
    """A MaskablePPO run of 20k timesteps on the default scenario (about a minute)."""
    config = TrainConfig(total_timesteps=20_000, eval_every=10_000, eval_users=500, checkpoint_every=20_000)
    train(config, out, progress=False)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(artifact: Path, port: int) -> list[str]:
    """``winback serve`` of ``artifact`` on loopback ``port``, run by this interpreter."""
    return [
        sys.executable,
        "-m",
        "winback.cli",
        "serve",
        str(artifact),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def wait_healthy(port: int, server: subprocess.Popen, timeout: float = 60.0, interval: float = 0.2) -> None:
    """Returns at the first 200 on ``/healthz``, asking every ``interval`` seconds until then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"winback serve exited with code {server.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(interval)
    raise RuntimeError(f"winback serve did not answer /healthz within {timeout:.0f}s")


def _post(connection: http.client.HTTPConnection, body: bytes) -> bool:
    """One ``POST /v1/decide``; whether it succeeded."""
    try:
        connection.request("POST", "/v1/decide", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        connection.close()
        return False


def _bodies(rows: list[dict[str, float]], batch: int, count: int) -> list[bytes]:
    return [
        json.dumps(
            {"users": [{"features": rows[(i * batch + j) % len(rows)]} for j in range(batch)]}
        ).encode()
        for i in range(count)
    ]


def _paced(port: int, rows: list[dict[str, float]], rate: float, seconds: float) -> dict:
    """Batch-1 requests at ``rate`` per second for ``seconds``; latency from each scheduled send time."""
    count = int(rate * seconds)
    bodies = _bodies(rows, 1, count + WARMUP)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    errors = sum(not _post(connection, body) for body in bodies[:WARMUP])
    latency: list[float] = []
    start = time.perf_counter()
    for i, body in enumerate(bodies[WARMUP:]):
        scheduled = start + i / rate
        if (wait := scheduled - time.perf_counter()) > 0:
            time.sleep(wait)
        errors += not _post(connection, body)
        latency.append(time.perf_counter() - scheduled)
    return {"latency": latency, "seconds": time.perf_counter() - start, "errors": errors}


def _back_to_back(port: int, rows: list[dict[str, float]], batch: int, count: int, seconds: float) -> dict:
    """Up to ``count`` requests of ``batch`` users, each sent when the last is answered, for ``seconds``."""
    bodies = _bodies(rows, batch, min(count, 64))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    errors = sum(not _post(connection, body) for body in bodies[:5])
    latency: list[float] = []
    start = time.perf_counter()
    while len(latency) < count and time.perf_counter() - start < seconds:
        sent = time.perf_counter()
        errors += not _post(connection, bodies[len(latency) % len(bodies)])
        latency.append(time.perf_counter() - sent)
    return {"latency": latency, "seconds": time.perf_counter() - start, "errors": errors}


if __name__ == "__main__":
    main()
