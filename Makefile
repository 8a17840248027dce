# Set-up and checks. `make quickstart` and `make test` work on a fresh clone: both create .venv
# when missing and install what they need. torch is installed first, pinned to the CPU wheel
# (2.13.0) through constraints.txt, so CPU machines never download CUDA packages.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
OUT ?= runs/quickstart
TIMESTEPS ?= 600000

.PHONY: quickstart test fuzz test-slow lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

# The pipeline end to end on CDNOW: decay models, an agent trained on the packaged model's
# simulator (two seeds side by side, the better on validation users kept), the benchmark against
# the tuned baselines (prints the leaderboard), the agent exported to ONNX, and the exported
# artifact run through the what-if engine with a small care team.
quickstart: $(VENV)/.installed
	rm -rf $(OUT)  # rebuilt from scratch on every run
	$(BIN)/winback decay eval --data cdnow --out $(OUT)/decay
	$(BIN)/winback train --algo maskable_ppo --timesteps $(TIMESTEPS) --seed 0 --seed 1 --out $(OUT)/agent
	$(BIN)/winback bench --policies all --agent $(OUT)/agent --seeds 5 --tuning-seeds 1 --out $(OUT)/bench
	$(BIN)/winback export $(OUT)/agent --out $(OUT)/export
	$(BIN)/winback whatif care_team_limited --policies no_contact,fixed_cadence,interest_threshold \
		--agent $(OUT)/export --seeds 2 --tuning-seeds 1 --out $(OUT)/whatif

test: $(VENV)/.installed-dev
	$(BIN)/ruff check winback tests benchmarks
	$(BIN)/ruff format --check winback tests benchmarks
	$(BIN)/python -m pytest -q

fuzz: $(VENV)/.installed-dev  # the fuzz tests with fresh random examples (make test repeats fixed ones)
	HYPOTHESIS_PROFILE=explore $(BIN)/python -m pytest -q -m "not slow" $(wildcard tests/test_*fuzz*.py) \
		tests/test_scenarios.py tests/test_sweep.py tests/test_operations.py

test-slow: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -m slow

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check winback tests benchmarks
	$(BIN)/ruff format --check winback tests benchmarks

clean:
	rm -rf $(VENV) runs
