# The two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT

.PHONY: run test lint format lock bench bench-smoke createsuperuser clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base: requirements/base.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/base.txt
	touch $@

$(VENV)/.dev: requirements/dev.txt pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	# The project itself, for the `taxi-bench` command; everything it needs is pinned above.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@ $(VENV)/.base

## Set up everything and serve on http://127.0.0.1:$(PORT)/ (SQLite and in-memory channel
## layer by default; DATABASE_URL and REDIS_URL move it onto PostgreSQL and Redis).
run: $(VENV)/.base
	$(PY) manage.py migrate --noinput
	$(PY) -m config.serve

## Run the whole test suite (and fail on missing migrations or lint).
test: $(VENV)/.dev
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## The benchmark: starts taxi as production runs it (PostgreSQL, Redis), runs the
## standard suite sized for two cores and rewrites docs/benchmarks.md (BENCH_ARGS passes
## options, e.g. BENCH_ARGS="--database-url postgres://...").
bench: $(VENV)/.dev
	$(PY) -m taxi_bench.suite $(BENCH_ARGS)

## Every workload of the benchmark, tiny (seconds), as CI runs it.
bench-smoke: $(VENV)/.dev
	$(PY) -m taxi_bench.suite --smoke $(BENCH_ARGS)

createsuperuser: $(VENV)/.base
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createsuperuser

## Re-pin the dependencies (with hashes, from PyPI only, recording no index address).
lock: $(VENV)/.dev
	PIP_CONFIG_FILE=/dev/null $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	  --strip-extras --no-emit-index-url --no-emit-find-links -o requirements/base.txt pyproject.toml
	PIP_CONFIG_FILE=/dev/null $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	  --strip-extras --no-emit-index-url --no-emit-find-links --extra dev \
	  -o requirements/dev.txt pyproject.toml

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
