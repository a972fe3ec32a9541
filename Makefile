# The two commands of the quickstart are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# Extra requirement pinned on top of the project's, e.g. DJANGO_SPEC='Django>=6,<7'.
DJANGO_SPEC ?=
PYTEST_ARGS ?=
BIN := $(VENV)/bin
# Two stamps in one virtualenv: the demo needs only the runtime dependencies
# (Django, DRF, PyJWT, cryptography); the tests, lint and benchmarks the dev
# extra. Installing the dev extra installs the runtime too, so it makes both.
STAMP := $(VENV)/.installed-dev
RUNTIME_STAMP := $(VENV)/.installed-runtime
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: install demo resource-server test test-postgres lint format docs bench bench-jwt bench-purge soak clean

$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . $(if $(DJANGO_SPEC),'$(DJANGO_SPEC)')
	touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' $(if $(DJANGO_SPEC),'$(DJANGO_SPEC)')
	touch $(STAMP) $(RUNTIME_STAMP)

install: $(STAMP)

## make demo: install the runtime, migrate the SQLite database, create the demo data, serve on :8000
# DEBUG only here, on 127.0.0.1; static files through the URLconf, behind the Host check.
demo: $(RUNTIME_STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_setup
	DJANGO_DEBUG=1 $(BIN)/python manage.py runserver --nostatic 127.0.0.1:8000

## make resource-server: a second service accepting the demo's tokens (:8001)
# It needs RESOURCE_SERVER_CLIENT_ID/_SECRET, printed by `make demo` (manage.py demo_setup)
resource-server: $(RUNTIME_STAMP)
	DJANGO_SETTINGS_MODULE=example_project.resource_server.settings \
		$(BIN)/python -m django runserver 127.0.0.1:8001

## make bench-jwt: sign/verify cost of one access token per algorithm
bench-jwt: $(STAMP)
	$(BIN)/python bench/jwt_algorithms.py

# The benchmarks' own virtualenv: this project plus the peer packages.
BENCH_VENV := bench/.venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[dev]' -r bench/requirements.txt
	touch $(BENCH_STAMP)

## make bench: per-request and token-endpoint costs side by side with the peers -> bench/RESULTS.md
bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py

## make bench-purge: purge 1M dead + 100k live pairs on PostgreSQL, beside the peers' cleanups
bench-purge: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/purge.py

## make soak: a bounded run of the real stack under load and faults -> bench/SOAK_RESULTS.md
soak: $(STAMP)
	$(BIN)/python bench/soak.py

## make test: the whole suite on DATABASE_URL (SQLite unless set)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## make test-postgres: the whole suite on the local PostgreSQL, PostgreSQL-only tests required
test-postgres: $(STAMP)
	DATABASE_URL=$(POSTGRES_URL) TOKEN_LIFECYCLE_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make docs: the documentation site from docs/ (mkdocs.yml), strictly: any warning fails -> site/
# NO_MKDOCS_2_WARNING silences Material's end-of-life banner, which is not a warning about the pages.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf .venv .venv-* db.sqlite3 .pytest_cache *.egg-info site
