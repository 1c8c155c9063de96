VENV := .venv
PYTHON := $(VENV)/bin/python
MANAGE := $(PYTHON) manage.py

.PHONY: help venv demo test lint format clean

help:
	@echo "make demo   build the environment, load a demo practice and serve it on http://127.0.0.1:8000"
	@echo "make test   run linters, the migrations check and the whole test suite"

venv: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock .python-version scripts/bootstrap.sh
	./scripts/bootstrap.sh
	touch $@

demo: venv
	$(MANAGE) rundemo

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_SETTINGS_MODULE=config.settings.test $(MANAGE) makemigrations --check --dry-run

# The whole suite runs twice: on SQLite, then on PostgreSQL (see the script).
test: lint
	$(VENV)/bin/pytest
	./scripts/test-postgres.sh

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .tools var
