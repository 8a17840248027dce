"""The decision service (``winback.serve``, ``winback serve``) on a tiny exported run, through FastAPI's
test client."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import winback
from winback.benchmarks.suite import sample_users
from winback.cli import app
from winback.export.runtime import ExportedArtifact
from winback.export.runtime.card import CARD_FILE
from winback.serve import create_app
from winback.simulator.features import feature_names, observe

with warnings.catch_warnings():
    # starlette 1.10 asks for httpx2, which is not released on PyPI; httpx is what fastapi documents.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

DERIVED = ("interest", "log_recency", "log_frequency", "log_monetary", "log_tenure", "new_user")
TRAINING_STACK = ("torch", "stable_baselines3", "sb3_contrib", "numba", "onnx", "gymnasium")
"""Modules that serving an export must not import (onnxruntime is not ``onnx``)."""


@pytest.fixture(scope="module")
def client(tiny_export) -> TestClient:
    return TestClient(create_app(tiny_export))


@pytest.fixture(scope="module")
def population(scenario):
    """300 evaluation users after 3 periods of random actions (coupons valid, contacts recent), the
    state they were in before the last period, what they did in it and the contacts they received."""
    simulator = scenario.simulator_for(7)
    state, rng = sample_users(scenario.eval_users(), 300, seed=7).copy(), np.random.default_rng(7)
    for _ in range(3):
        before = state.copy()
        outcome = simulator.step(state, rng.integers(0, len(simulator.actions), state.n_users))
    return simulator, before, state, outcome


def feature_users(names: tuple[str, ...], observations: np.ndarray) -> list[dict]:
    return [{"features": dict(zip(names, row.tolist(), strict=True))} for row in observations]


def test_health_and_card(client, tiny_export) -> None:
    card = json.loads((tiny_export / CARD_FILE).read_text())
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["policy_sha256"] == card["files"]["policy.onnx"]["sha256"]
    assert client.get("/v1/card").json() == card


def test_decide_features_matches_the_policy_and_the_simulators_masks(client, tiny_export, population) -> None:
    simulator, _, state, _ = population
    names, observations = feature_names(simulator), observe(simulator, state)
    masks = simulator.action_masks(state)
    response = client.post("/v1/decide", json={"users": feature_users(names, observations)})
    assert response.status_code == 200
    answers = response.json()["users"]
    decision = ExportedArtifact.load(tiny_export).decide(observations, masks)
    assert [a["action_index"] for a in answers] == decision.actions.tolist()
    assert [a["action"] for a in answers] == [simulator.actions[i] for i in decision.actions]
    assert [list(a["allowed"].values()) for a in answers] == masks.tolist()
    for answer, row in zip(answers, decision.scores, strict=True):
        assert [s if s is not None else -math.inf for s in answer["scores"].values()] == row.tolist()
    assert [list(a["probabilities"].values()) for a in answers] == decision.probabilities.tolist()
    coupon_valid = observations[:, names.index("coupon_valid")] == 1
    assert coupon_valid.any()
    for answer, valid in zip(answers, coupon_valid, strict=True):
        assert ("coupon_valid" in answer["masked_by"].get("coupon", [])) == valid


def test_decide_answers_the_probabilities_over_the_allowed_actions(client, population) -> None:
    """Per user: 0 where masked, exp(scores) renormalised over the allowed actions (summing to 1),
    and ``probability`` is that of the chosen action (the propensity to log)."""
    simulator, _, state, _ = population
    body = {"users": feature_users(feature_names(simulator), observe(simulator, state))}
    answers = client.post("/v1/decide", json=body).json()["users"]
    renormalised = 0
    for answer in answers:
        allowed = np.array(list(answer["allowed"].values()))
        p = np.array(list(answer["probabilities"].values()))
        scores = np.array([-math.inf if s is None else s for s in answer["scores"].values()])
        assert list(answer["probabilities"]) == list(simulator.actions)
        assert (p[~allowed] == 0).all() and abs(p[allowed].sum() - 1) <= 1e-6
        assert np.abs(p - np.exp(scores) / np.exp(scores).sum()).max() <= 1e-6
        assert answer["probability"] == answer["probabilities"][answer["action"]] == p.max()
        renormalised += not allowed.all() and np.exp(scores).sum() < 1 - 1e-3
    assert renormalised > 0  # masking took mass away, and the probabilities put it back


def loaded_training_modules(code: str) -> tuple[list[str], str]:
    """The :data:`TRAINING_STACK` modules loaded after ``code`` runs in a fresh interpreter on this
    checkout, and what it printed."""
    report = f"import json, sys; print(json.dumps([m for m in {TRAINING_STACK!r} if m in sys.modules]))"
    env = {**os.environ, "PYTHONPATH": str(Path(winback.__file__).parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    *printed, modules = result.stdout.strip().splitlines()
    return json.loads(modules), "\n".join(printed)


def test_the_runtime_and_the_app_import_no_training_module(tiny_export) -> None:
    code = f"""
import winback.export.runtime, winback.serve
from winback.export.runtime import ExportedArtifact
from winback.serve import create_app

app = create_app({str(tiny_export)!r})
print(ExportedArtifact.load({str(tiny_export)!r}).name, len(app.routes) > 0)
"""
    assert loaded_training_modules(code) == ([], "maskable_ppo-onnx True")


def test_winback_serve_imports_no_training_module(tiny_export) -> None:
    """``winback serve --help`` and ``winback serve DIR`` (up to uvicorn.run, stubbed)."""
    code = f"""
import uvicorn
from winback.cli import app

uvicorn.run = lambda service, **options: print("serving", service.title, options["port"])
for argv in (["serve", "--help"], ["serve", {str(tiny_export)!r}, "--port", "8123"]):
    try:
        app(argv)
    except SystemExit as exit_info:
        assert exit_info.code == 0, (argv, exit_info.code)
"""
    modules, printed = loaded_training_modules(code)
    assert modules == []
    assert "ARTIFACT_DIR" in printed and printed.endswith("serving winback decision service 8123")


def test_decide_batch_of_256(client, population) -> None:
    simulator, _, state, _ = population
    observations = observe(simulator, state)[np.arange(256) % state.n_users]
    response = client.post(
        "/v1/decide", json={"users": feature_users(feature_names(simulator), observations)}
    )
    assert response.status_code == 200 and len(response.json()["users"]) == 256


def test_decide_from_stored_state_and_activity(client, population) -> None:
    """State + the period's activity give the simulator's own features (interest where no prior lift
    is in force) and the decision on them."""
    simulator, before, after, outcome = population
    names = feature_names(simulator)
    observed = observe(simulator, after)
    d, kinds = before.decay, simulator.kinds
    users = []
    for i in range(before.n_users):
        contacts = {kind: int(outcome.delivered[i] == k + 1) for k, kind in enumerate(kinds)}
        users.append(
            {
                "state": {
                    "hidden": d.hidden[i].tolist(),
                    "cell": d.cell[i].tolist(),
                    "period": int(d.period[i]),
                    "first_period": int(d.first_period[i]),
                    "last_purchase": int(d.last_purchase[i]),
                    "frequency": float(d.frequency[i]),
                    "spend_total": float(before.spend_total[i]),
                },
                "activity": [
                    {
                        "counts": {"purchase": int(outcome.activity.counts[i, 0])},
                        "spend": float(outcome.activity.spend[i]),
                        "contacts": contacts,
                    }
                ],
                "features": {n: float(observed[i, j]) for j, n in enumerate(names) if n not in DERIVED},
            }
        )
    response = client.post("/v1/decide", json={"users": users})
    assert response.status_code == 200
    answers = response.json()["users"]
    served = np.array([[a["features"][n] for n in names] for a in answers])
    no_lift = after.lift.sum(axis=1) == 0
    assert no_lift.any() and not no_lift.all()
    for j, name in enumerate(names):
        rows = no_lift if name == "interest" else slice(None)
        assert np.abs(served[rows, j] - observed[rows, j]).max() <= 1e-5, name
    assert [a["state"]["period"] for a in answers] == after.decay.period.tolist()
    hidden = np.array([a["state"]["hidden"] for a in answers])
    assert np.abs(hidden - after.decay.hidden).max() <= 1e-5
    # A second period from the returned state continues where the first left off.
    again = [{**user, "state": answer["state"]} for user, answer in zip(users[:3], answers, strict=False)]
    assert [
        a["state"]["period"] for a in client.post("/v1/decide", json={"users": again}).json()["users"]
    ] == [p + 1 for p in after.decay.period[:3].tolist()]


def valid_features(client) -> dict[str, float]:
    return {f["name"]: f["low"] for f in client.get("/v1/card").json()["observation"]["features"]}


@pytest.mark.parametrize(
    ("change", "field", "error"),
    [
        (lambda f: f.pop("interest"), "users.1.features.interest", "missing"),
        (lambda f: f.update(fatigue="3"), "users.1.features.fatigue", "float_type"),
        (lambda f: f.update(opted_out=True), "users.1.features.opted_out", "float_type"),
        (lambda f: f.update(interest=1.5), "users.1.features.interest", "less_than_equal"),
        (lambda f: f.update(log_recency=-1.0), "users.1.features.log_recency", "greater_than_equal"),
        (lambda f: f.update(shoe_size=9.0), "users.1.features.shoe_size", "extra_forbidden"),
    ],
)
def test_invalid_features_are_422_naming_the_field(client, change, field, error) -> None:
    good, bad = valid_features(client), valid_features(client)
    change(bad)
    response = client.post("/v1/decide", json={"users": [{"features": good}, {"features": bad}]})
    assert response.status_code == 422
    assert [(d["field"], d["type"]) for d in response.json()["detail"]] == [(field, error)]


def test_nan_is_422_naming_the_field(client) -> None:
    body = json.dumps({"users": [{"features": valid_features(client)}]}).replace(
        '"fatigue": 0.0', '"fatigue": NaN'
    )
    response = client.post("/v1/decide", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "users.0.features.fatigue"


def test_invalid_state_and_activity_are_422(client) -> None:
    contact = {k: v for k, v in valid_features(client).items() if k not in DERIVED}
    state = {
        "hidden": [0.0] * 3,
        "cell": [0.0] * 32,
        "period": 5,
        "first_period": 6,
        "last_purchase": 6,
        "frequency": 0.0,
        "spend_total": 0.0,
    }
    user = {"state": state, "activity": [{"counts": {}, "spend": -1.0}], "features": contact}
    response = client.post("/v1/decide", json={"users": [user]})
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["detail"]}
    assert fields == {
        "users.0.state.hidden",
        "users.0.activity.0.counts.purchase",
        "users.0.activity.0.spend",
    }
    ordered = {
        **user,
        "state": {**state, "hidden": [0.0] * 32},
        "activity": [{"counts": {"purchase": 0}, "spend": 0.0}],
    }
    response = client.post("/v1/decide", json={"users": [ordered]})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert (
        problem["field"] == "users.0.state"
        and "first_period <= last_purchase <= period" in problem["message"]
    )
    assert client.post("/v1/decide", json={"users": []}).status_code == 422


def test_serve_cli_refuses_a_tampered_artifact(tiny_export, tmp_path, capsys) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / CARD_FILE).write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        app(["serve", str(broken), "--port", "8123"])
    assert exit_info.value.code == 2
    assert "not a winback policy card" in capsys.readouterr().err


def most_requested(client, population) -> tuple[np.ndarray, list[dict], dict, str]:
    """A batch of 256 users' observations, as a request's users, the free answer to it and the contact
    the policy chose most often in it."""
    simulator, _, state, _ = population
    observations = observe(simulator, state)[np.arange(256) % state.n_users]
    users = feature_users(feature_names(simulator), observations)
    free = client.post("/v1/decide", json={"users": users}).json()
    wanted = {
        a: sum(u["action"] == a for u in free["users"]) for a in ("push_new_items", "coupon", "care_message")
    }
    return observations, users, free, max(wanted, key=wanted.get)


def test_decide_with_limits_fits_the_decisions_to_them(client, population) -> None:
    _, users, free, limited = most_requested(client, population)
    wanted = {limited: sum(u["action"] == limited for u in free["users"])}
    assert wanted[limited] >= 2, "the policy asks for a contact often enough to limit it"
    limit = wanted[limited] // 2
    response = client.post("/v1/decide", json={"users": users, "limits": {limited: limit, "coupon": None}})
    assert response.status_code == 200
    body = response.json()
    sent = [u["action"] for u in body["users"]]
    assert sent.count(limited) == body["allocation"][limited]["used"] <= limit
    assert body["allocation"][limited]["limit"] == limit and body["allocation"][limited]["price"] > 0
    unlimited = client.post("/v1/decide", json={"users": users, "limits": {limited: 10_000}}).json()
    assert [u["action"] for u in unlimited["users"]] == [u["action"] for u in free["users"]]
    refused = client.post("/v1/decide", json={"users": users, "limits": {"none": 3}})
    assert refused.status_code == 422 and "limits" in refused.text
    negative = client.post("/v1/decide", json={"users": users, "limits": {limited: -1}})
    assert negative.status_code == 422


def test_a_priced_policy_decides_at_the_price_that_fits_the_limits(tiny_priced_export, population) -> None:
    simulator, _, state, _ = population
    observations = observe(simulator, state)[np.arange(256) % state.n_users]
    users = feature_users(feature_names(simulator), observations)
    priced = TestClient(create_app(tiny_priced_export))
    artifact = ExportedArtifact.load(tiny_priced_export)
    masks = artifact.masks(observations).allowed
    free = priced.post("/v1/decide", json={"users": users}).json()
    at_zero = artifact.decide(np.hstack([observations, np.zeros((256, 1), dtype=np.float32)]), masks)
    assert [u["action_index"] for u in free["users"]] == at_zero.actions.tolist(), "no limit: price 0"
    body = priced.post("/v1/decide", json={"users": users, "limits": {"care_message": 3}}).json()
    sent = [u["action"] for u in body["users"]]
    care = body["allocation"]["care_message"]
    assert sent.count("care_message") == care["used"] <= 3
    assert 0.0 <= care["price"] <= artifact.price_input.ceiling
    shown = np.hstack([observations, np.full((256, 1), care["price"], dtype=np.float32)])
    assert body["users"][0]["probabilities"] == pytest.approx(
        dict(zip(artifact.actions, artifact.decide(shown, masks).probabilities[0].tolist(), strict=True))
    ), "the answer's probabilities are those at the price shown"


def test_decide_at_given_prices(client, tiny_priced_export, population) -> None:
    observations, users, free, dear = most_requested(client, population)
    body = client.post("/v1/decide", json={"users": users, "prices": {dear: 1e6}}).json()
    assert all(u["action"] != dear for u in body["users"]) and body["allocation"][dear] == {
        "limit": None,
        "used": 0,
        "price": 1e6,
    }
    nothing = client.post("/v1/decide", json={"users": users, "prices": {dear: 0.0}}).json()
    assert [u["action"] for u in nothing["users"]] == [u["action"] for u in free["users"]]
    both = client.post("/v1/decide", json={"users": users, "limits": {dear: 1}, "prices": {dear: 1.0}})
    assert both.status_code == 422 and "not both" in both.text
    assert client.post("/v1/decide", json={"users": users, "prices": {dear: -1.0}}).status_code == 422
    priced = TestClient(create_app(tiny_priced_export))
    artifact = ExportedArtifact.load(tiny_priced_export)
    shown = priced.post("/v1/decide", json={"users": users, "prices": {"care_message": 0.7}}).json()
    at = artifact.decide(
        np.hstack([observations, np.full((256, 1), 0.7, dtype=np.float32)]),
        artifact.masks(observations).allowed,
    )
    assert [u["action_index"] for u in shown["users"]] == at.actions.tolist()
    unread = priced.post("/v1/decide", json={"users": users, "prices": {"coupon": 0.7}})
    assert unread.status_code == 422 and "reads prices of" in unread.text
