# Spindle: `make run` serves the API with a worker and the scheduler; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

# Test services (the machine's PostgreSQL and Redis); override on the command line if yours differ.
TEST_DATABASE_URL ?= postgres://$(or $(PGUSER),postgres)@127.0.0.1:5432/test
TEST_REDIS ?= redis://127.0.0.1:6379

.PHONY: run test bench lint install install-dev migrate clean browser nginx promtool podman

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Both also generate the gRPC modules from spooled/grpc/spooled.proto (not committed: spooled/grpc/codegen.py).
$(VENV)/.installed: pyproject.toml spooled/grpc/spooled.proto | $(VENV)/bin/activate
	$(PY) -m pip install -q -e .
	$(PY) -m spooled.grpc
	touch $@

$(VENV)/.installed-dev: pyproject.toml spooled/grpc/spooled.proto | $(VENV)/bin/activate
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m spooled.grpc
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(PY) manage.py migrate --no-input -v0
	$(PY) manage.py createcachetable

run: migrate
	$(PY) manage.py bootstrap_demo
	@# WhiteNoise serves the admin's and /docs' files from var/static, hashed and precompressed: collected again
	@# only when the installed packages changed since (it costs seconds of CPU).
	@manifest="$${SPINDLE_STATIC_ROOT:-$${SPINDLE_VAR_DIR:-var}/static}/staticfiles.json"; \
	test "$$manifest" -nt $(VENV)/.installed || $(PY) manage.py collectstatic --no-input -v0
	@# make run is the development/self-hosting command: push targets on this machine or network are allowed
	@# unless SPINDLE_ALLOW_PRIVATE_TARGETS=0 is given (the setting's own default, for production, is off).
	@# One port: uvicorn runs config.front, which reads each body in full, then serves the event streams with async
	@# views and everything else with the WSGI app on a thread pool (no second HTTP server, no socket in between).
	@echo "Spindle: http://$(HOST):$(PORT) (REST, /docs, event streams at /v1/events)"
	@# Requests may name this machine by its loopback names or HOST; listening wider, set ALLOWED_HOSTS.
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" HOST=$(HOST) PORT=$(PORT) \
	ALLOWED_HOSTS="$${ALLOWED_HOSTS:-localhost,127.0.0.1,[::1],$(HOST)}" \
	SPINDLE_ALLOW_PRIVATE_TARGETS=$${SPINDLE_ALLOW_PRIVATE_TARGETS:-1} bin/run-procfile Procfile

# The dashboard's browser tests (tests/dashboard) drive Debian's Chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

# The nginx tests (tests/nginx) run Debian's nginx in front of a live Spindle, as the test user, in a tmp prefix.
nginx:
	@test -x /usr/sbin/nginx || { apt-get update -qq && apt-get install -y -qq nginx; }

# The /metrics test (tests/alerts/test_metrics.py) checks a scrape with promtool, from Debian's prometheus package.
promtool:
	@command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus; }

# The container test (tests/install/test_container_image.py) builds the Dockerfile with Debian's podman (runc runtime)
# over a base image it makes with debootstrap.
podman:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq podman runc debootstrap; }

# pytest-xdist workers: each gets its own test database (pytest-django) and Redis databases (tests/redis_per_worker.py,
# counting down from 14 and 15, so at most 7). Most tests wait on sockets and processes, so two workers on two cores
# halve the run; tests marked `exclusive` (they restart PostgreSQL itself) run alone afterwards.
TEST_WORKERS ?= 2
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_REDIS)/14 CACHE_URL=$(TEST_REDIS)/15 \
	SECRET_KEY=test-only-not-a-secret-just-long-enough-for-hs256-keys SPINDLE_TESTING=1

test: install-dev browser nginx promtool podman
	@# The layers contract first (pyproject [tool.importlinter]): an upward import fails before any test runs.
	$(VENV)/bin/lint-imports --no-cache
	@# Exit status 5 is "no test selected": PYTEST_ARGS may narrow a run to one of the two parts.
	$(TEST_ENV) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not exclusive" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(TEST_ENV) $(PY) -m pytest -m exclusive $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install-dev
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_REDIS)/13 CACHE_URL=$(TEST_REDIS)/12 \
	SECRET_KEY=bench-only-not-a-secret-just-long-enough-for-hs256-keys SPINDLE_ALLOW_PRIVATE_TARGETS=1 \
	$(PY) bench/run.py $(if $(BENCH),--only $(BENCH)) $(if $(SIZE),--size $(SIZE))

clean:
	rm -rf var/ $(VENV)
