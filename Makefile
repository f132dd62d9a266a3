# The two commands a new user runs are `make demo` and `make test`; both set up
# everything they need (Debian packages, the .venv) and are safe to re-run.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: all setup demo test lint typecheck bench deb clean

all: test

$(STAMP): pyproject.toml scripts/bootstrap
	sh scripts/bootstrap
	@touch $@

setup: $(STAMP)

demo: $(STAMP)
	sh examples/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench hooks/qemu packaging
	$(VENV)/bin/ruff format --check src tests bench hooks/qemu packaging

typecheck: $(STAMP)
	$(VENV)/bin/mypy src

test: $(STAMP) lint typecheck
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/python bench/run.py

deb:
	sh packaging/build-deb

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache packaging/out
