# relman — make targets. `make run` and `make test` work from a clean clone with Python 3.11+.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements.lock
# `make lock` runs uv from a throwaway venv outside the checkout; never part of .venv.
LOCK_TOOLS ?= $(HOME)/.cache/relman/lock-tools
UV_VERSION := 0.13.9

.PHONY: install lock lock-check run test test-unit protos protos-check lint typecheck bench cluster clean

install: $(STAMP)

# Everything in .venv comes from requirements.lock, checked against its hashes; the project
# itself is then installed editable (which cannot be hashed) with the locked setuptools.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "relman needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --require-hashes --no-deps -r $(LOCK)
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	@touch $@

# Re-resolve requirements.lock from pyproject.toml: the runtime and dev pins, plus pip and the
# [build-system] requirements. Unpinned transitive versions already in the lock are kept;
# `make lock LOCK_ARGS=--upgrade` moves them to the newest that fit.
lock:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "relman needs Python 3.11 or newer")'
	@test -x $(LOCK_TOOLS)/bin/pip || $(PYTHON) -m venv $(LOCK_TOOLS)
	@$(LOCK_TOOLS)/bin/pip install -q uv==$(UV_VERSION)
	$(PYTHON) -c 'import tomllib; print("\n".join(["pip", *tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]]))' \
	  | UV_CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/uv pip compile --quiet --no-config \
	      --universal --python-version 3.11 --generate-hashes --extra dev \
	      --default-index https://pypi.org/simple $(LOCK_ARGS) pyproject.toml - -o $(LOCK)

# Offline and quick: every pin in pyproject.toml is in requirements.lock at the same version.
lock-check:
	@$(PYTHON) scripts/check_lock.py

run: install
	@scripts/run-local.sh

# Tests by what they need (tests/conftest.py): `test-unit` runs tests/unit, which needs no
# PostgreSQL, Docker or cluster; `test` runs everything (tests/unit, tests/integration, tests/e2e).
test-unit: install
	$(PY) -m pytest tests/unit -n 2 --dist loadgroup

test: install
	$(PY) -m pytest -n 2 --dist loadgroup --durations=15

protos: install
	scripts/gen_protos.sh $(PY)

protos-check: install
	scripts/gen_protos.sh $(PY)
	@git diff --exit-code --stat -- services/proto || \
	  (echo "generated stubs are out of date: run 'make protos' and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- services/proto)" || \
	  (echo "generated stubs are untracked: run 'make protos' and commit" >&2; exit 1)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services/common services/release services/deployer services/cli bench

bench: install
	$(PY) -m bench

cluster: install
	bash cluster/build.sh
	$(PY) -m relman_cluster --workdir .relman/cluster $(CLUSTER_ARGS)

clean:
	rm -rf $(VENV) .relman .pytest_cache .mypy_cache .ruff_cache
