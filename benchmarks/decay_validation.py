"""Model selection inside the CDNOW calibration period: how the LSTM's inputs were chosen.

The holdout is never touched: every model is fitted on calibration weeks 0-25 and evaluated on
forecasting calibration weeks 26-38, the same way ``winback decay eval`` evaluates the holdout.
Each LSTM variant is a set of ``LSTMConfig`` overrides.

    python benchmarks/decay_validation.py
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from winback.data.cdnow import CALIBRATION_END, load_cdnow_panel
from winback.decay_model.base import DecayModel
from winback.decay_model.bgnbd import BGNBDModel
from winback.decay_model.evaluate import evaluate_models
from winback.decay_model.lstm import LSTMConfig, LSTMDecayModel

VARIANTS: dict[str, dict] = {
    "lstm (default)": {},
    "lstm without BG/NBD inputs": {"bgnbd_inputs": False},
    "lstm without BG/NBD inputs or tenure": {"bgnbd_inputs": False, "tenure": False},
    "lstm with activity and contact inputs only": {
        "bgnbd_inputs": False,
        "tenure": False,
        "recency_frequency": False,
    },
    "lstm without tenure": {"tenure": False},
    "lstm without weight averaging": {"weight_average_decay": 0.0},
    "lstm hidden 64": {"hidden_size": 64, "head_size": 64},
    "lstm batch 512": {"batch_size": 512},
    "lstm patience 8": {"patience": 8, "max_epochs": 80},
}
COLUMNS = ("holdout_bias_pct", "mae", "weekly_mape", "log_score", "cum_error_pct_wk78")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-until", type=int, default=26)
    parser.add_argument("--draws", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=";".join(VARIANTS), help="';'-separated names from VARIANTS")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    panel = load_cdnow_panel("cdnow")
    calibration = panel.truncate(panel.spec.period_of(CALIBRATION_END))
    models: dict[str, DecayModel] = {"bgnbd": BGNBDModel()}
    models.update({name: LSTMDecayModel(LSTMConfig(**VARIANTS[name])) for name in args.variants.split(";")})
    last_week = calibration.spec.n_periods - 1
    print(f"fit on weeks < {args.fit_until}, forecast weeks {args.fit_until}-{last_week}")
    print(
        "| model | overrides | bias % | MAE | weekly MAPE % | log score | cum. error % "
        "| share 0 (actual) | fit s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, model in models.items():
        started = time.perf_counter()
        model.fit(calibration, until=args.fit_until, seed=args.seed)
        seconds = time.perf_counter() - started
        result = evaluate_models(
            {name: model}, calibration, calibration_end=args.fit_until, draws=args.draws, tracking_draws=2
        )
        m = result.metrics[name]
        shares = m["count_shares"]
        figures = " | ".join(f"{m[c]:.4g}" for c in COLUMNS)
        print(
            f"| {name} | `{json.dumps(VARIANTS.get(name, {}))}` | {figures} | "
            f"{shares['model'][0]:.4f} ({shares['actual'][0]:.4f}) | {seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
