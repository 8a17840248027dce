"""Simulator speed and memory against references measured in the same run: raw LSTM cell, matmul peak.

One command fits ``LSTMConfig(hidden_size=64)`` on CDNOW master's calibration weeks (a real fit, seed
``--seed``: the share of active users, which sets the sampling work, depends on the fit; speed does
not depend on its quality otherwise), saves it under ``--out``/model, then runs child processes:

- one *worker* per thread setting ``--threads``: ``T`` is ``T`` torch threads and ``T`` BLAS threads,
  ``T/B`` torch ``T`` and BLAS ``B`` (default ``2,1,2/1``: this machine's defaults, one thread, and
  two torch threads with one BLAS thread). OpenBLAS (numpy's, scipy's: the composed step's LSTM kernel,
  numba's matrix products) reads its thread count at start-up, so each setting is its own process with
  ``OPENBLAS_NUM_THREADS`` = B, ``OMP_NUM_THREADS`` = ``MKL_NUM_THREADS`` = T and
  ``torch.set_num_threads(T)``.
  Each worker measures, in this order: fp32 matmul GFLOP/s (torch and numpy, the machine's peak); the
  raw batched ``torch.nn.LSTMCell(inputs, 64)`` forward under ``torch.no_grad`` at N = 1, 1k, 100k, 1M
  (the whole batch in one call, no blocks) and over batch sizes 256..16k (its best is the reference);
  the full simulator step (``Simulator.step``) at the same N with every action ``none`` and with random
  actions, populations built by ``replicate`` of the CDNOW customers warm-started at week 39; at 100k
  users the simulator with ``SimulatorConfig(block_size=...)`` 256, 1024, 4096, 16384 and the composed
  step (``compiled=False``: the decay model's numpy methods, the reference the compiled step of
  ``winback.simulator.fused`` is tested against) at 1024 and 4096 (and for one user); the decay model
  alone rolled forward (``simulate_forward``, no simulator); and a cProfile of both steps at 100k;
- one *memory* child that builds the 1M population and steps it a few times: its peak RSS
  (``ru_maxrss``) against the 2 GiB target, and the population state's bytes;
- eight *busy-core* children stepping 100k users (fused and composed step) with one torch thread and
  the BLAS pools at 2 or 1 threads, with the other core idle or kept busy by a spinning process the
  script starts and stops.

Every throughput is users x periods per second from the median of several timed steps (or calls;
fewer, at least one, when they would take more than 8 s), each measurement starting from a fresh copy
of the population after two untimed steps. Targets (issue 3): at 100k and 1M users the full step
reaches at least 50% of the raw cell's best throughput; 1M users fit in 2 GiB.
Writes ``report.md``, ``speed.json`` and ``throughput.png`` to ``--out``.

The same with ``--data synthetic``: the model is fitted (calendar inputs on, ``hidden_size=64``) on a
log of ``winback.data.synthetic`` with three event types (view, cart, purchase) and randomised
contacts of every kind, 23,570 users over 104 weeks (calibration: the first 78), so the compiled step
runs the configuration CDNOW does not have: three event types, calendar inputs and learned contacts.

    python benchmarks/simulator_speed.py --out runs/simulator_speed
    python benchmarks/simulator_speed.py --data synthetic --out runs/simulator_speed_synthetic
    python benchmarks/simulator_speed.py --quick --out runs/simulator_speed_quick   # smoke test, ~2.5 min
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import itertools
import json
import math
import os
import pstats
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from cdnow_lstm import (
    CALIBRATION_WEEKS,
    CPUClock,
    machine,
    machine_line,
    markdown_table,
    quiet_line,
)

from winback.data.cdnow import load_cdnow_panel
from winback.data.panel import PeriodPanel, build_panel
from winback.data.synthetic import SyntheticConfig, generate_synthetic_log
from winback.decay_model.artifact import load_model, save_model
from winback.decay_model.evaluate import simulate_forward
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel
from winback.progress import progress_bar
from winback.simulator.core import Simulator, SimulatorConfig
from winback.simulator.population import replicate, warm_start
from winback.simulator.state import SimState
from winback.streams import RandomStreams

GIB = 2**30
HIDDEN = 64
MEMORY_TARGET_GIB = 2.0
DEFAULT_THREADS = "2,1,2/1"
RATIO_TARGET = 0.5


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to measure; ``--quick`` shrinks everything."""

    sizes: tuple[int, ...]
    cell_batches: tuple[int, ...]
    block_sizes: tuple[int, ...]
    block_size_users: tuple[int, ...]
    profile_users: int
    memory_users: int
    memory_steps: int
    user_steps: int
    """Timed user-periods per measurement, about (steps = this / N, within the bounds below)."""
    max_steps: int
    min_steps: int
    budget_seconds: float
    """A measurement times fewer steps (at least one) when its steps would take longer than this."""
    max_epochs: int | None


FULL = Plan(
    sizes=(1, 1_000, 100_000, 1_000_000),
    cell_batches=(256, 512, 1024, 2048, 4096, 8192, 16384),
    block_sizes=(256, 1024, 4096, 16384),
    block_size_users=(100_000,),
    profile_users=100_000,
    memory_users=1_000_000,
    memory_steps=3,
    user_steps=2_000_000,
    max_steps=2_000,
    min_steps=3,
    budget_seconds=8.0,
    max_epochs=None,
)
QUICK = Plan(
    sizes=(1, 1_000, 10_000),
    cell_batches=(256, 1024, 4096),
    block_sizes=(256, 1024, 4096),
    block_size_users=(10_000,),
    profile_users=10_000,
    memory_users=100_000,
    memory_steps=2,
    user_steps=100_000,
    max_steps=100,
    min_steps=2,
    budget_seconds=1.0,
    max_epochs=2,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (small N, a 2-epoch fit)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fit, the streams and the actions")
    parser.add_argument(
        "--threads", default=DEFAULT_THREADS, help="thread settings (T or T/B, see above), one worker each"
    )
    parser.add_argument(
        "--data", choices=tuple(DATA), default="cdnow", help="the log the model is fitted on (see above)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/simulator_speed"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--busy-check", choices=("fused", "composed"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-threads", default="1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.worker:
        run_worker(plan, args.out, args.worker_threads, args.seed, args.data)
    elif args.memory:
        run_memory(plan, args.out, args.seed, args.data)
    elif args.busy_check:
        run_busy_check(plan, args.out, args.seed, args.busy_check, args.data)
    else:
        run_all(plan, args)


# --- orchestration --------------------------------------------------------------------------------------


def cdnow_data() -> tuple[PeriodPanel, int]:
    """CDNOW master and its calibration end."""
    return load_cdnow_panel("cdnow"), CALIBRATION_WEEKS


def synthetic_data() -> tuple[PeriodPanel, int]:
    """A synthetic log with three event types and randomised contacts (module docstring), 78 weeks in."""
    config = SyntheticConfig(n_users=23_570, n_periods=104, seed=0)
    end = np.datetime64(config.start) + np.timedelta64(7 * config.n_periods, "D")
    log = generate_synthetic_log(config).log
    return build_panel(log, period="week", origin=config.start, end=str(end)), 78


DATA: dict[str, Callable[[], tuple[PeriodPanel, int]]] = {"cdnow": cdnow_data, "synthetic": synthetic_data}
FITTED_ON = {
    "cdnow": "CDNOW master weeks 0-38",
    "synthetic": "a synthetic log (23,570 users, view/cart/purchase, randomised contacts) weeks 0-77",
}


def describe_layout(fit: dict) -> str:
    """The fitted model's input configuration in words."""
    layout = fit["layout"]
    on = [name for name in ("tenure", "calendar", "recency_frequency", "bgnbd") if layout[name]]
    learned = ", ".join(fit["learned_contacts"]) or "none"
    return (
        f"{layout['n_event_types']} event type(s), {layout['n_contact_kinds']} contact kinds "
        f"(effects learned: {learned}), {', '.join(on)}"
    )


def run_all(plan: Plan, args: argparse.Namespace) -> None:
    command = "python benchmarks/simulator_speed.py" + (" --quick" if args.quick else "")
    command += (
        f" --threads {args.threads}" if args.threads != DEFAULT_THREADS else ""
    ) + f" --seed {args.seed}"
    command += (f" --data {args.data}" if args.data != "cdnow" else "") + f" --out {args.out}"
    info, clock = machine(), CPUClock.now()
    torch.set_num_threads(1)
    config = LSTMConfig(
        hidden_size=HIDDEN,
        calendar=True if args.data == "synthetic" else None,
        **({"max_epochs": plan.max_epochs} if plan.max_epochs else {}),
    )
    panel, until = DATA[args.data]()
    started = time.perf_counter()
    model = LSTMDecayModel(config).fit(panel, until=until, seed=args.seed, progress=True)
    fit_seconds = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    save_model(model, args.out / "model")
    script = [sys.executable, str(Path(__file__).resolve()), "--out", str(args.out), "--seed", str(args.seed)]
    script += ["--data", args.data]
    if args.quick:
        script.append("--quick")
    workers = {}
    for setting in args.threads.split(","):
        torch_threads, blas_threads = parse_threads(setting)
        print(f"worker with {torch_threads} torch and {blas_threads} BLAS thread(s)", flush=True)
        subprocess.run(
            [*script, "--worker", "--worker-threads", setting],
            check=True,
            env=threads_env(blas_threads, torch_threads),
        )
        workers[setting] = json.loads((args.out / f"worker_{setting.replace('/', '-')}.json").read_text())
    print("memory child", flush=True)
    subprocess.run([*script, "--memory"], check=True, env=threads_env(1))
    memory = json.loads((args.out / "memory.json").read_text())
    # Before the busy-core check keeps a core busy:
    quiet_check, machine_after = CPUClock.now().others_since(clock), machine()
    busy = []
    for path, threads, other_core_busy in itertools.product(("fused", "composed"), (2, 1), (False, True)):
        print(
            f"busy-core check: {path} step, BLAS threads {threads}, other core busy: {other_core_busy}",
            flush=True,
        )
        # A spinning process of our own keeps the other core busy, as other work would.
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if other_core_busy else None
        try:
            subprocess.run([*script, "--busy-check", path], check=True, env=threads_env(threads))
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        check = json.loads((args.out / "busy_check.json").read_text())
        busy.append(check | {"blas_threads": threads, "other_core_busy": other_core_busy})
    result = {
        "command": command,
        "machine": info,
        "machine_after": machine_after,
        "quick": args.quick,
        "fit": {
            "data": args.data,
            "config": dataclasses.asdict(config),
            "layout": model.input_layout()._asdict(),
            "learned_contacts": list(model.learned_contacts()),
            "seconds": round(fit_seconds, 1),
            "epochs": len(model.history),
        },
        "workers": workers,
        "memory": memory,
        "busy_check": busy,
        "quiet_check": quiet_check,
    }
    (args.out / "speed.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(workers, args.out / "throughput.png")
    report = markdown(result, plan)
    (args.out / "report.md").write_text(report)
    print(report)
    print(f"written to {args.out}")


def parse_threads(setting: str) -> tuple[int, int]:
    """``"T"`` or ``"T/B"``: (torch threads, BLAS threads)."""
    torch_threads, _, blas_threads = setting.partition("/")
    return int(torch_threads), int(blas_threads or torch_threads)


def threads_env(blas_threads: int, torch_threads: int | None = None) -> dict[str, str]:
    """The environment of a child whose OpenBLAS pools have ``blas_threads`` threads (and OpenMP/MKL
    ``torch_threads``, the same by default)."""
    omp = str(torch_threads or blas_threads)
    return os.environ | {
        "OPENBLAS_NUM_THREADS": str(blas_threads),
        "OMP_NUM_THREADS": omp,
        "MKL_NUM_THREADS": omp,
    }


# --- worker: every throughput in one process -----------------------------------------------------------


def run_worker(plan: Plan, out: Path, setting: str, seed: int, data: str) -> None:
    clock = CPUClock.now()
    threads, blas_threads = parse_threads(setting)
    torch.set_num_threads(threads)
    model = load_model(out / "model")
    simulator = Simulator(model, SimulatorConfig(), seed=seed)
    panel, until = DATA[data]()
    base = warm_start(simulator, panel, until=until)
    n_inputs = model.network.lstm.input_size
    result: dict = {
        "setting": setting,
        "threads": threads,
        "blas_threads": blas_threads,
        "torch_threads": torch.get_num_threads(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "load_average_start": machine()["load_average"],
        "lstm_inputs": n_inputs,
        "cell_flop_per_user": 2 * (n_inputs + HIDDEN) * 4 * HIDDEN,
    }
    rng = np.random.default_rng(seed)
    n_tasks = (
        3
        + len(plan.sizes) * 3
        + len(plan.cell_batches)
        + len(block_variants(plan)) * len(plan.block_size_users)
    )
    with progress_bar() as bar:
        task = bar.add_task(f"speed, threads {setting}", total=n_tasks)

        def done(what: str) -> None:
            bar.update(task, advance=1, description=f"speed, threads {setting}: {what}")

        result["matmul"] = measure_matmul(rng)
        done("matmul")
        cell = torch.nn.LSTMCell(n_inputs, HIDDEN)
        result["cell_at_n"] = {}
        for n in plan.sizes:
            result["cell_at_n"][n] = measure_cell(cell, n, rng, plan)
            done(f"raw cell N={n:,}")
        result["cell_batches"] = {}
        for batch in plan.cell_batches:
            result["cell_batches"][batch] = measure_cell(cell, batch, rng, plan)
            done(f"raw cell batch {batch:,}")
        result["cell_best"] = max(result["cell_batches"].values(), key=lambda m: m["rate"])
        result["numpy_kernel_cell_1024"] = measure_kernel_cell(model, 1024, rng, plan)
        done("numpy kernel cell")

        result["simulator"] = {}
        for n in plan.sizes:
            population = build_population(base, n, seed)
            result["simulator"][n] = {
                policy: measure_simulator(simulator, population, policy, rng, plan)
                for policy in ("none", "random")
            }
            done(f"simulator N={n:,}")
            if n == 1:
                composed = Simulator(model, composed_config(SimulatorConfig()), seed=seed)
                result["simulator"][n]["none, composed"] = measure_simulator(
                    composed, population, "none", rng, plan
                )
            if n in plan.block_size_users:
                result["simulator"][n]["block_sizes"] = {}
                for label, config in block_variants(plan).items():
                    blocked = Simulator(model, config, seed=seed)
                    result["simulator"][n]["block_sizes"][label] = measure_simulator(
                        blocked, population, "none", rng, plan
                    )
                    done(f"simulator N={n:,} block {label}")
            if n == plan.profile_users:
                result["decay_model_alone"] = {
                    rows: measure_rollout(model, population, rows, seed, plan) for rows in (1024, 16384)
                }
                one_thread = Simulator(model, SimulatorConfig(threads=1), seed=seed)  # cProfile: main thread
                result["profile"] = {
                    step_path(simulator): profile_steps(one_thread, population, plan),
                    "composed": profile_steps(
                        Simulator(model, composed_config(SimulatorConfig()), seed=seed), population, plan
                    ),
                }
            del population
            done(f"simulator N={n:,}, done")
    result["load_average_end"] = machine()["load_average"]
    result["quiet_check"] = CPUClock.now().others_since(clock)
    (out / f"worker_{setting.replace('/', '-')}.json").write_text(json.dumps(result, indent=2) + "\n")


def composed_config(config: SimulatorConfig) -> SimulatorConfig:
    """``config`` without the compiled step: the decay model's numpy methods composed (the reference)."""
    return dataclasses.replace(config, compiled=False)


def block_variants(plan: Plan) -> dict[str, SimulatorConfig]:
    """``SimulatorConfig(block_size=b)`` per block size, and the composed step at 1024 and 4096."""
    variants = {f"{b:,}": SimulatorConfig(block_size=b) for b in plan.block_sizes}
    for b in (1024, 4096):
        if b in plan.block_sizes:
            variants[f"{b:,}/composed"] = composed_config(SimulatorConfig(block_size=b))
    return variants


def step_path(simulator: Simulator, n: int | None = None) -> str:
    """``fused`` (the compiled step of ``winback.simulator.fused``) or ``composed``."""
    return "composed" if getattr(simulator, "_fused", None) is None else "fused"


def steps_for(n: int, plan: Plan) -> int:
    return int(min(plan.max_steps, max(plan.min_steps, round(plan.user_steps / n))))


def timed_steps(step: Callable[[], object], n: int, plan: Plan) -> int:
    """Run ``step`` twice (untimed: the first call may load compiled code) and say how many steps to
    time: :func:`steps_for`, fewer (at least one) when they would take over ``plan.budget_seconds``."""
    step()
    started = time.perf_counter()
    step()
    seconds = time.perf_counter() - started
    return max(1, min(steps_for(n, plan), int(plan.budget_seconds / max(seconds, 1e-9))))


def summary(times: list[float], n: int) -> dict:
    """Throughput in users per second from per-call times (median, and best call)."""
    median, best = float(np.median(times)), float(np.min(times))
    return {"n": n, "calls": len(times), "median_s": median, "rate": n / median, "best_rate": n / best}


def measure_matmul(rng: np.random.Generator, size: int = 2048, seconds: float = 1.0) -> dict:
    """Best fp32 GFLOP/s of a size x size matmul, in torch and in numpy."""
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flop = 2 * size**3
    out = {}
    for name, call in (("torch", lambda: torch.mm(ta, tb)), ("numpy", lambda: a @ b)):
        call()
        times, started = [], time.perf_counter()
        while time.perf_counter() - started < seconds or len(times) < 3:
            t = time.perf_counter()
            call()
            times.append(time.perf_counter() - t)
        out[f"{name}_gflops"] = flop / min(times) / 1e9
        out[f"{name}_median_gflops"] = flop / float(np.median(times)) / 1e9
    return out


@torch.no_grad()
def measure_cell(cell: torch.nn.LSTMCell, n: int, rng: np.random.Generator, plan: Plan) -> dict:
    """The raw cell on the whole batch of ``n`` users in one call."""
    x = torch.from_numpy(rng.standard_normal((n, cell.input_size), dtype=np.float32))
    h = torch.from_numpy(rng.standard_normal((n, HIDDEN), dtype=np.float32))
    c = torch.from_numpy(rng.standard_normal((n, HIDDEN), dtype=np.float32))
    cell(x, (h, c))
    times = []
    for _ in range(steps_for(n, plan)):
        started = time.perf_counter()
        cell(x, (h, c))
        times.append(time.perf_counter() - started)
    return summary(times, n)


def measure_kernel_cell(model, n: int, rng: np.random.Generator, plan: Plan) -> dict:
    """The simulator's own LSTM cell (the model's numpy kernel) on one block of ``n`` users."""
    kernel = model.kernel
    x = rng.standard_normal((n, model.network.lstm.input_size), dtype=np.float32)
    h = rng.standard_normal((n, HIDDEN), dtype=np.float32)
    c = rng.standard_normal((n, HIDDEN), dtype=np.float32)
    kernel.step(x, h, c)
    times = []
    for _ in range(steps_for(n, plan)):
        started = time.perf_counter()
        kernel.step(x, h, c)
        times.append(time.perf_counter() - started)
    return summary(times, n)


def build_population(base: SimState, n: int, seed: int) -> SimState:
    """``n`` users: customers drawn at random (seeded), each replicated just enough times, every copy with
    its own random stream. A view of the first ``n`` rows: no second copy of the population."""
    copies = math.ceil(n / base.n_users)
    customers = np.sort(np.random.default_rng(seed).permutation(base.n_users)[: math.ceil(n / copies)])
    return replicate(base.take(customers), copies).take(slice(0, n))


def measure_simulator(
    simulator: Simulator, population: SimState, policy: str, rng: np.random.Generator, plan: Plan
) -> dict:
    """Full steps of a fresh copy of ``population`` (after two untimed ones), actions drawn beforehand."""
    n = population.n_users
    state = population.copy()
    n_actions = len(simulator.actions)

    def draw() -> np.ndarray:
        return np.zeros(n, dtype=np.int64) if policy == "none" else rng.integers(0, n_actions, n)

    steps = timed_steps(lambda: simulator.step(state, draw()), n, plan)
    actions = [draw() for _ in range(steps)]
    times, buyers = [], 0
    for step_actions in actions:
        started = time.perf_counter()
        outcome = simulator.step(state, step_actions)
        times.append(time.perf_counter() - started)
        buyers += int((outcome.activity.purchases > 0).sum())
    return summary(times, n) | {
        "mean_interest_at_start": float(population.forecast.p_active.mean()),
        "buyer_share": buyers / (n * steps),
        "block_size": simulator.config.block_size,
        "path": step_path(simulator, n),
    }


def measure_rollout(model, population: SimState, rows_per_block: int, seed: int, plan: Plan) -> dict:
    """The decay model alone rolled forward by ``simulate_forward`` (forecast, sample, advance)."""
    n, steps = population.n_users, steps_for(population.n_users, plan)
    start = int(population.period.max())
    streams = RandomStreams(seed)
    started = time.perf_counter()
    simulate_forward(
        model,
        population.decay,
        end=start + steps,
        draws=1,
        streams=streams,
        keys=population.keys,
        rows_per_block=rows_per_block,
    )
    seconds = time.perf_counter() - started
    return {
        "n": n,
        "steps": steps,
        "rows_per_block": rows_per_block,
        "seconds": seconds,
        "rate": n * steps / seconds,
    }


PROFILED = {
    ("winback/simulator/core.py", "step"): "Simulator.step (everything)",
    ("winback/simulator/core.py", "_step_block"): "Simulator._step_block (one block of users)",
    ("winback/decay_model/base.py", "take"): "BatchArrays.take (views of a block)",
    ("winback/simulator/fused.py", "step"): "FusedLSTMStep.step (the compiled step)",
    ("winback/simulator/fused.py", "_block"): "  the compiled period of a block (_block)",
    ("winback/decay_model/base.py", "concatenate"): "BatchArrays.concatenate (the blocks' outcomes)",
    ("winback/decay_model/lstm.py", "advance"): "LSTMDecayModel.advance",
    ("winback/decay_model/lstm.py", "step"): "  of which the LSTM cell (_Kernel.step, numpy)",
    ("winback/decay_model/lstm_period.py", "write_step_inputs"): "  of which the step inputs",
    ("winback/decay_model/lstm_period.py", "bgnbd_p_alive"): "    of which BG/NBD P(alive)",
    ("winback/decay_model/lstm.py", "forecast"): "LSTMDecayModel.forecast",
    ("winback/decay_model/lstm.py", "heads"): "  of which the output head (_Kernel.heads)",
    ("winback/decay_model/lstm.py", "sample"): "LSTMDecayModel.sample",
    ("winback/streams.py", "uniforms"): "RandomStreams.uniforms",
    ("winback/decay_model/base.py", "assign"): "BatchArrays.assign (state write-back)",
    ("winback/simulator/core.py", "action_masks"): "Simulator.action_masks",
    ("winback/simulator/rewards.py", "reward_components"): "reward_components",
}
"""Functions whose cumulative time the profile reports, by the end of their file's path."""


def profile_steps(simulator: Simulator, population: SimState, plan: Plan) -> dict:
    """cProfile of full steps (every action ``none``): cumulative time of the main parts, top own time."""
    state = population.copy()
    none = np.zeros(state.n_users, dtype=np.int64)
    steps = timed_steps(lambda: simulator.step(state, none), state.n_users, plan)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(steps):
        simulator.step(state, none)
    profiler.disable()
    wall = time.perf_counter() - started
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts, own = {}, []
    for (filename, _, function), (_, calls, tottime, cumtime, _) in stats.items():
        for (suffix, name), label in PROFILED.items():
            if function == name and filename.replace(os.sep, "/").endswith(suffix):
                parts[label] = {"calls": calls, "cumtime": cumtime}
        own.append({"function": f"{Path(filename).name}:{function}", "calls": calls, "tottime": tottime})
    own.sort(key=lambda row: -row["tottime"])
    return {
        "n": state.n_users,
        "steps": steps,
        "path": step_path(simulator),
        "block_size": simulator.config.block_size,
        "wall_seconds_profiled": wall,
        "parts": {label: parts.get(label) for label in PROFILED.values()},
        "top_own_time": own[:15],
    }


# --- busy-core check ----------------------------------------------------------------------------------


def run_busy_check(plan: Plan, out: Path, seed: int, path: str, data: str) -> None:
    """Simulator steps with one torch thread (as tests and environments run) and the BLAS threads of the
    environment: numpy's OpenBLAS, which runs the LSTM kernel, does not follow ``torch.set_num_threads``."""
    torch.set_num_threads(1)
    model = load_model(out / "model")
    config = SimulatorConfig() if path == "fused" else composed_config(SimulatorConfig())
    simulator = Simulator(model, config, seed=seed)
    panel, until = DATA[data]()
    base = warm_start(simulator, panel, until=until)
    population = build_population(base, plan.profile_users, seed)
    result = measure_simulator(simulator, population, "none", np.random.default_rng(seed), plan)
    (out / "busy_check.json").write_text(json.dumps(result, indent=2) + "\n")


# --- memory child --------------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def nbytes(value: object) -> int:
    """Bytes of every numpy array in a (nested) dataclass state or dict of arrays."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if dataclasses.is_dataclass(value):
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 0


def run_memory(plan: Plan, out: Path, seed: int, data: str) -> None:
    clock = CPUClock.now()
    torch.set_num_threads(1)
    rss_import = rss_bytes()
    model = load_model(out / "model")
    simulator = Simulator(model, SimulatorConfig(), seed=seed)
    panel, until = DATA[data]()
    started = time.perf_counter()
    base = warm_start(simulator, panel, until=until)
    del panel
    rss_base = rss_bytes()
    n = plan.memory_users
    state = build_population(base, n, seed)
    build_seconds = time.perf_counter() - started
    rss_built, peak_built = rss_bytes(), peak_rss_bytes()
    rng = np.random.default_rng(seed)
    step_seconds = []
    for _ in range(plan.memory_steps):
        actions = rng.integers(0, len(simulator.actions), n)
        started = time.perf_counter()
        outcome = simulator.step(state, actions)
        step_seconds.append(time.perf_counter() - started)
    result = {
        "users": n,
        "steps": plan.memory_steps,
        "policy": "random actions",
        "state_bytes": nbytes(state),
        "state_bytes_by_part": {
            "decay (LSTM hidden, cell, ...)": nbytes(state.decay),
            "forecast": nbytes(state.forecast),
            "simulator fields": nbytes(state) - nbytes(state.decay) - nbytes(state.forecast),
        },
        "outcome_bytes": nbytes(outcome),
        "rss_after_import_gib": rss_import / GIB,
        "rss_after_warm_start_gib": rss_base / GIB,
        "rss_after_build_gib": rss_built / GIB,
        "peak_rss_after_build_gib": peak_built / GIB,
        "peak_rss_gib": peak_rss_bytes() / GIB,
        "build_seconds": build_seconds,
        "step_seconds": step_seconds,
        "quiet_check": CPUClock.now().others_since(clock),
    }
    (out / "memory.json").write_text(json.dumps(result, indent=2) + "\n")


# --- report --------------------------------------------------------------------------------------------


def plot(workers: dict, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for (setting, w), style in zip(workers.items(), ("-", "--", ":", "-."), strict=False):
        sizes = [int(n) for n in w["simulator"]]
        threads = f"threads {setting}"
        axis.plot(
            sizes,
            [w["simulator"][str(n)]["none"]["rate"] for n in sizes],
            "o" + style,
            color="tab:orange",
            label=f"simulator, none ({threads})",
        )
        axis.plot(
            sizes,
            [w["simulator"][str(n)]["random"]["rate"] for n in sizes],
            "s" + style,
            color="tab:red",
            label=f"simulator, random ({threads})",
        )
        axis.plot(
            sizes,
            [w["cell_at_n"][str(n)]["rate"] for n in sizes],
            "^" + style,
            color="tab:blue",
            label=f"raw LSTMCell, whole batch ({threads})",
        )
        batches = [int(b) for b in w["cell_batches"]]
        axis.plot(
            batches,
            [w["cell_batches"][str(b)]["rate"] for b in batches],
            "v" + style,
            color="tab:green",
            label=f"raw LSTMCell, batch sweep ({threads})",
        )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("users per call (N)")
    axis.set_ylabel("user-periods per second")
    axis.set_title(f"Simulator step vs raw LSTM cell (hidden {HIDDEN})")
    axis.legend(fontsize=7)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def rate(value: float) -> str:
    return (
        f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"
    )


def markdown(r: dict, plan: Plan) -> str:
    workers = r["workers"]
    thread_list = list(workers)
    mem = r["memory"]
    lines = [
        f"# Simulator speed and memory (LSTM hidden {HIDDEN})",
        "",
        "```bash",
        r["command"],
        "```",
        "",
        f"Machine: {machine_line(r['machine'])} at the start; "
        f"{r['machine_after']['load_average']} after the memory child; from the fit to the memory child "
        f"{quiet_line(r['quiet_check'])}.",
        f"LSTM: `LSTMConfig(hidden_size={HIDDEN})` fitted on {FITTED_ON[r['fit']['data']]} (seed from the "
        f"command, {r['fit']['epochs']} epochs, {r['fit']['seconds']} s); "
        f"inputs: {describe_layout(r['fit'])}.",
        "",
    ]
    for setting in thread_list:
        w = workers[setting]
        threads = w["threads"]
        best, flop, matmul = w["cell_best"], w["cell_flop_per_user"], w["matmul"]
        lines += [
            f"## Threads {setting}: torch.set_num_threads({w['torch_threads']}), "
            f"OPENBLAS_NUM_THREADS={w['blas_threads']}, OMP/MKL_NUM_THREADS={threads}",
            "",
            f"Load average at the start / end of this worker: {w['load_average_start']} / "
            f"{w['load_average_end']}; {quiet_line(w['quiet_check'])}. "
            f"fp32 matmul 2048x2048: torch {matmul['torch_gflops']:.0f} GFLOP/s, "
            f"numpy {matmul['numpy_gflops']:.0f} GFLOP/s (best call). The raw cell costs {flop:,} FLOP per "
            f"user ({w['lstm_inputs']} inputs + {HIDDEN} hidden, 4 gates); its best batch "
            f"({best['n']:,}) runs {rate(best['rate'])} users/s = {best['rate'] * flop / 1e9:.0f} GFLOP/s. "
            "The simulator's own cell (the model's numpy kernel, one block of 1024): "
            f"{rate(w['numpy_kernel_cell_1024']['rate'])} users/s.",
            "",
        ]
        rows = []
        for n in w["simulator"]:
            sim, cell = w["simulator"][n], w["cell_at_n"][n]
            none, random = sim["none"], sim["random"]
            rows.append(
                [
                    f"{int(n):,}",
                    rate(sim["none"]["rate"]),
                    rate(sim["random"]["rate"]),
                    rate(cell["rate"]),
                    f"{sim['none']['rate'] / best['rate']:.2f}",
                    f"{sim['random']['rate'] / best['rate']:.2f}",
                    f"{100 * none['mean_interest_at_start']:.2f} / {100 * none['buyer_share']:.2f} / "
                    f"{100 * random['buyer_share']:.2f}",
                    f"{sim['none']['calls']}",
                    none["path"],
                ]
            )
        lines += [
            markdown_table(
                [
                    "N users",
                    "simulator, all none (user-periods/s)",
                    "simulator, random actions",
                    "raw LSTMCell, whole batch in one call",
                    "simulator none / raw cell best",
                    "simulator random / raw cell best",
                    "interest at start % / buyers per step %, none / random",
                    "timed steps",
                    "step",
                ],
                rows,
            ),
            "",
            *(
                [
                    "One user through the composed step (`compiled=False`), all none: "
                    f"{rate(w['simulator']['1']['none, composed']['rate'])} periods/s.",
                    "",
                ]
                if "none, composed" in w["simulator"].get("1", {})
                else []
            ),
            "Raw cell over batch sizes (users/s): "
            + ", ".join(f"{int(b):,}: {rate(m['rate'])}" for b, m in w["cell_batches"].items())
            + ".",
            "",
        ]
        block_rows = []
        for n in w["simulator"]:
            for label, m in w["simulator"][n].get("block_sizes", {}).items():
                block_rows.append(
                    [f"{int(n):,}", label, m["path"], rate(m["rate"]), f"{m['rate'] / best['rate']:.2f}"]
                )
        if block_rows:
            lines += [
                markdown_table(
                    [
                        "N users",
                        "block_size",
                        "step",
                        "simulator, all none (user-periods/s)",
                        "/ raw cell best",
                    ],
                    block_rows,
                ),
                "",
            ]
        if "decay_model_alone" in w:
            alone = w["decay_model_alone"]
            lines += [
                "The decay model alone (`simulate_forward`: forecast, sample, advance; no simulator) at "
                f"{plan.profile_users:,} users: "
                + ", ".join(
                    f"{rate(m['rate'])} user-periods/s in blocks of {int(rows):,}"
                    for rows, m in alone.items()
                )
                + ".",
                "",
            ]
        for p in w.get("profile", {}).values():
            total = p["parts"]["Simulator.step (everything)"]["cumtime"]
            prof_rows = [
                [label, f"{v['cumtime']:.2f}", f"{100 * v['cumtime'] / total:.0f}%"]
                for label, v in p["parts"].items()
                if v is not None
            ]
            lines += [
                f"cProfile of {p['steps']} steps at {p['n']:,} users, {p['path']} step in blocks of "
                f"{p['block_size']:,}, every action none ({p['wall_seconds_profiled']:.2f} s under the "
                "profiler):",
                "",
                markdown_table(["part (cumulative)", "seconds", "share of the step"], prof_rows),
                "",
                "Own time, top functions: "
                + "; ".join(f"`{row['function']}` {row['tottime']:.2f} s" for row in p["top_own_time"][:10])
                + ".",
                "",
            ]
    busy_rows = [
        [
            b["path"],
            b["blas_threads"],
            "yes (a spinning process)" if b["other_core_busy"] else "no",
            rate(b["rate"]),
            f"{b['median_s']:.3f}",
            f"{b['n'] / b['best_rate']:.3f}",
        ]
        for b in r["busy_check"]
    ]
    lines += [
        f"## Busy other core ({plan.profile_users:,} users, all none, one torch thread, separate processes)",
        "",
        "numpy's and scipy's OpenBLAS (the composed step's LSTM kernel; numba's matrix products) "
        "have their own thread pools, which `torch.set_num_threads` does not govern; "
        "`OPENBLAS_NUM_THREADS` sets them.",
        "",
        markdown_table(
            [
                "step",
                "BLAS threads (OPENBLAS_NUM_THREADS)",
                "other core busy",
                "simulator (user-periods/s)",
                "median step s",
                "fastest step s",
            ],
            busy_rows,
        ),
        "",
    ]
    lines += [
        f"## Memory ({mem['users']:,} users, separate process, one thread)",
        "",
        f"During the memory child {quiet_line(mem['quiet_check'])}.",
        "",
        markdown_table(
            ["figure", "value"],
            [
                [
                    "population state (all arrays)",
                    f"{mem['state_bytes'] / GIB:.3f} GiB ({mem['state_bytes'] / mem['users']:.0f} B/user)",
                ],
                *[
                    [f"  of which {part}", f"{b / GIB:.3f} GiB"]
                    for part, b in mem["state_bytes_by_part"].items()
                ],
                ["one step's outcome arrays", f"{mem['outcome_bytes'] / GIB:.3f} GiB"],
                [
                    "RSS after imports / after warm start / after building",
                    f"{mem['rss_after_import_gib']:.2f} / {mem['rss_after_warm_start_gib']:.2f} / "
                    f"{mem['rss_after_build_gib']:.2f} GiB",
                ],
                [
                    f"peak RSS over build and {mem['steps']} steps ({mem['policy']})",
                    f"{mem['peak_rss_gib']:.2f} GiB (target < {MEMORY_TARGET_GIB:.0f} GiB)",
                ],
                [
                    "build (warm start + replicate) / step seconds",
                    f"{mem['build_seconds']:.1f} / " + ", ".join(f"{s:.2f}" for s in mem["step_seconds"]),
                ],
            ],
        ),
        "",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
