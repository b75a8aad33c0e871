# relman — make targets. `make run` and `make test` work from a clean clone with Python 3.11+.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-fast protos protos-check lint typecheck bench cluster clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "relman needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

run: install
	@scripts/run-local.sh

test: install
	$(PY) -m pytest -n 2 --dist loadgroup

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
