"""Start-up time of ``winback serve``: from process start to the first 200 on ``/healthz``.

Starts ``winback serve EXPORT`` (``python -m winback.cli``, the code this interpreter imports) on a
free loopback port ``--runs`` times, one after the other, asking ``/healthz`` every 10 ms until it
answers 200, then stops it; also times ``winback serve --help`` to its exit. Prints a markdown table
(median, min and max seconds) with the commands and the load average.

The export is ``--export-dir`` as it is, else ``--run-dir`` exported to a temporary directory, else a
small MaskablePPO run trained and exported first (as ``benchmarks/serve_load.py`` does).

    python benchmarks/serve_startup.py --export-dir runs/quickstart/export
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from serve_load import free_port, serve_command, small_run, wait_healthy

from winback.export.exporter import export_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--export-dir", type=Path, help="export to serve (default: export --run-dir)")
    parser.add_argument("--run-dir", type=Path, help="training run to export (default: train a small one)")
    parser.add_argument("--runs", type=int, default=5, help="start-ups timed per command")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve_startup_") as tmp:
        artifact = args.export_dir
        if artifact is None:
            torch.set_num_threads(1)
            artifact = Path(tmp) / "export"
            export_policy(args.run_dir or small_run(Path(tmp) / "run"), artifact, seeds=1, eval_users=200)
        load_before = os.getloadavg()
        healthy = [_until_healthy(artifact) for _ in range(args.runs)]
        helped = [_until_help() for _ in range(args.runs)]
        load_after = os.getloadavg()
    print(f"export: {artifact}; {os.cpu_count()} cores")
    print(f"load average before {load_before}, after {load_after}\n")
    print("| command | until | runs | median s | min s | max s |")
    print("|---|---|---:|---:|---:|---:|")
    for command, until, seconds in (
        ("python -m winback.cli serve EXPORT --port P --log-level warning", "first 200 on /healthz", healthy),
        ("python -m winback.cli serve --help", "exit", helped),
    ):
        print(
            f"| `{command}` | {until} | {len(seconds)} | {statistics.median(seconds):.2f} | "
            f"{min(seconds):.2f} | {max(seconds):.2f} |"
        )


def _until_healthy(artifact: Path) -> float:
    """Seconds from starting ``winback serve`` to its first 200 on ``/healthz``."""
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen(serve_command(artifact, port))
    try:
        wait_healthy(port, server, interval=0.01)
        return time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)


def _until_help() -> float:
    """Seconds ``winback serve --help`` runs (its output discarded); raises if it fails."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "winback.cli", "serve", "--help"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
