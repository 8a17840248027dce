"""Fitting the LSTM on a panel in shards: peak memory against the number of users, and throughput
against the raw torch LSTM's forward and backward pass at the same batch size, in the same run.

The users are the first shards of a panel written by ``winback data panel`` (shards are hash
buckets of users, so any shards are a random sample of them), as many as reach each ``--users``
figure. Each fit runs in its own process (its peak RSS its own): ``fit_shards`` for one epoch
(``--epochs``), and for sizes up to ``--in-memory-up-to`` users also ``fit`` on the same users
loaded into one in-memory panel. Writes ``OUT/results.json`` and ``OUT/report.md``.

``--ray USERS`` instead fits that many users twice, in this process and on Ray Train's two local
workers (``--ray-epochs`` epochs, or to early stopping), and compares their held-out loss and time
(``OUT/ray.json``, ``OUT/ray.md``).

    python benchmarks/lstm_fit_scale.py --panel runs/panel10m --out runs/lstm_fit_scale \\
        --users 100000 --users 1000000 --users 5000000
    python benchmarks/lstm_fit_scale.py --panel runs/panel10m --out runs/lstm_fit_scale --ray 100000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def subset(panel_dir: Path, users: int):
    """The first shards of the panel holding at least ``users`` users."""
    from winback.data.shards import open_panel

    panel = open_panel(panel_dir)
    total, count = 0, 0
    for count, n in enumerate(panel.shard_users, start=1):  # noqa: B007 - count is used after the loop
        total += n
        if total >= users:
            break
    return dataclasses.replace(
        panel, shard_files=panel.shard_files[:count], shard_users=panel.shard_users[:count]
    )


def raw_lstm_throughput(n_inputs: int, hidden: int, batch: int, length: int, seconds: float = 10.0) -> float:
    """User-periods per second of ``nn.LSTM`` forward + backward + Adam step on random inputs."""
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(n_inputs, hidden, batch_first=True)
    head = torch.nn.Linear(hidden, 1)
    optimizer = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=1e-3)
    inputs = torch.randn(batch, length, n_inputs)
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        out, _ = lstm(inputs)
        loss = head(out).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    return steps * batch * length / (time.perf_counter() - started)


def measure(panel_dir: Path, users: int, mode: str, until: int, epochs: int | None) -> dict[str, Any]:
    import torch

    from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel, RayBackend

    torch.set_num_threads(1)
    panel = subset(panel_dir, users)
    config = LSTMConfig(calendar=False) if epochs is None else LSTMConfig(max_epochs=epochs, calendar=False)
    model = LSTMDecayModel(config)
    started = time.perf_counter()
    if mode in ("shards", "ray"):
        model.fit_shards(panel, until=until, seed=0, ray=RayBackend(workers=2) if mode == "ray" else None)
        n_users = panel.n_users
    else:
        loaded = panel.load()
        model.fit(loaded, until=until, seed=0)
        n_users = loaded.n_users
    seconds = time.perf_counter() - started
    layout = model.input_layout()
    result = {
        "mode": mode,
        "users": n_users,
        "shards": panel.n_shards,
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "val_loss": model.history[-1]["val_loss"],
        "best_val_loss": min(row["val_loss"] for row in model.history),
        "epochs": len(model.history),
        "n_inputs": layout.n_step,
        "hidden": config.hidden_size,
        "batch": config.batch_size,
    }
    # User-periods per second: every calibration period of every user, per epoch (the held-out
    # users' forward passes included), over the whole fit (the prior and the shards' reading too).
    periods = 0
    for index in range(panel.n_shards):
        first = panel.shard_column(index, "first_period")
        periods += int((until - first[first < until]).sum())
    result["user_periods_per_epoch"] = periods
    result["user_periods_per_s"] = round(periods * len(model.history) / seconds)
    return result


def run_child(args: argparse.Namespace, users: int, mode: str, until: int) -> dict[str, Any]:
    """One measurement in its own process (its peak RSS its own), printed as it comes."""
    child = [sys.executable, __file__, "--panel", str(args.panel), "--out", str(args.out)]
    child += ["--until", str(until), "--epochs", str(args.epochs), "--ray-epochs", str(args.ray_epochs)]
    child += ["--child", str(users), mode]
    subprocess.run(child, check=True, capture_output=True, text=True)
    result = json.loads((args.out / f"{mode}-{users}.json").read_text())
    print(result, flush=True)
    return result


def compare_ray(args: argparse.Namespace, until: int) -> None:
    results = []
    for mode in ("local", "ray"):
        results.append({**run_child(args, args.ray, mode, until), "mode": mode})
    (args.out / "ray.json").write_text(json.dumps({"until": until, "results": results}, indent=2) + "\n")
    local = results[0]
    lines = [
        "# The LSTM fit in one process against Ray Train's two local workers",
        "",
        f"`python benchmarks/lstm_fit_scale.py --panel {args.panel} --out {args.out} --until {until} "
        f"--ray {args.ray} --ray-epochs {args.ray_epochs}`",
        "",
        "| fit | users | epochs | best held-out loss | x local | wall s | x local | peak RSS GiB (driver) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        lines.append(
            f"| {row['mode']} | {row['users']:,} | {row['epochs']} | {row['best_val_loss']:.4f} | "
            f"{row['best_val_loss'] / local['best_val_loss']:.4f} | {row['seconds']:.1f} | "
            f"{row['seconds'] / local['seconds']:.2f} | {row['peak_rss_gib']:.2f} |"
        )
    (args.out / "ray.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panel", type=Path, required=True, help="A panel directory (winback data panel).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--users", type=int, action="append", default=[])
    parser.add_argument("--ray", type=int, metavar="USERS", help="Compare a fit here and on Ray.")
    parser.add_argument("--ray-epochs", type=int, default=0, help="Epochs of that fit (0: early stopping).")
    parser.add_argument("--until", type=int, help="Calibration end period (default: the panel's last).")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--in-memory-up-to", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2, metavar=("USERS", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from winback.data.shards import open_panel

    until = args.until or open_panel(args.panel).spec.n_periods
    if args.child:
        epochs = (args.ray_epochs if args.child[1] in ("local", "ray") else args.epochs) or None
        mode = "shards" if args.child[1] == "local" else args.child[1]
        result = measure(args.panel, int(args.child[0]), mode, until, epochs)
        (args.out / f"{args.child[1]}-{args.child[0]}.json").write_text(json.dumps(result))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.ray:
        compare_ray(args, until)
        return
    results = []
    for users in args.users:
        for mode in ("shards", "memory") if users <= args.in_memory_up_to else ("shards",):
            results.append(run_child(args, users, mode, until))
    first = results[0]
    raw = raw_lstm_throughput(first["n_inputs"], first["hidden"], first["batch"], until)
    body = {"panel": str(args.panel), "until": until, "epochs": args.epochs, "raw_user_periods_per_s": raw}
    body["results"] = results
    (args.out / "results.json").write_text(json.dumps(body, indent=2) + "\n")
    lines = [
        "# LSTM fit on a panel in shards",
        "",
        f"`python benchmarks/lstm_fit_scale.py --panel {args.panel} --out {args.out} "
        + " ".join(f"--users {u}" for u in args.users)
        + f" --epochs {args.epochs}`",
        "",
        f"Raw torch LSTM forward + backward + Adam at batch {first['batch']}, {until} periods, "
        f"{first['n_inputs']} inputs, hidden {first['hidden']} (1 thread): {raw:,.0f} user-periods/s.",
        "",
        "| fit | users | shards | wall s | user-periods/s | x raw | peak RSS GiB | val loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        lines.append(
            f"| {row['mode']} | {row['users']:,} | {row['shards']} | {row['seconds']:.1f} | "
            f"{row['user_periods_per_s']:,} | {row['user_periods_per_s'] / raw:.2f} | "
            f"{row['peak_rss_gib']:.2f} | {row['val_loss']:.4f} |"
        )
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
