VENV := .venv
PYTHON := $(VENV)/bin/python
MANAGE := $(PYTHON) manage.py

.PHONY: help venv demo test bench lint format clean

help:
	@echo "make demo   build the environment, load a demo practice and serve it on http://127.0.0.1:8000"
	@echo "make test   run linters, the migrations check and the whole test suite"
	@echo "make bench  time the product against the machine's limits and write docs/benchmarks.md"
	@echo "            (N=100000 patients by default; BENCH_DATABASES=sqlite,postgresql;"
	@echo "            BENCH_PHASES=import,list,delivery,bulk)"

venv: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock .python-version scripts/bootstrap.sh
	./scripts/bootstrap.sh
	touch $@

demo: venv
	$(MANAGE) rundemo

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	env -u TEST_DATABASE_URL DJANGO_SETTINGS_MODULE=config.settings.test $(MANAGE) makemigrations --check --dry-run

# The whole suite runs twice: on SQLite, then on PostgreSQL (see the script).
# TEST_DATABASE_URL is for the second pass only.
test: lint
	env -u TEST_DATABASE_URL $(VENV)/bin/pytest
	./scripts/test-postgres.sh

# Patients in the benchmark's practice, the databases it runs on and its phases.
# PostgreSQL is at BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/portal_bench
# by default), a database the benchmark creates and drops.
N ?= 100000
BENCH_DATABASES ?= sqlite,postgresql
BENCH_PHASES ?= import,list,delivery,bulk

bench: venv
	$(PYTHON) -m benchmarks --patients $(N) --databases $(BENCH_DATABASES) \
		--phases $(BENCH_PHASES) --output docs/benchmarks.md

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .tools var
