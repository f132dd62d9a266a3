# The two commands a new user runs are `make demo` and `make test`; both set up
# everything they need (Debian packages, the .venv) and are safe to re-run.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: all setup demo test fuzz lint typecheck bench deb clean

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
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy src

test: $(STAMP) lint typecheck
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

# The property tests of tests/properties with many more examples than `make test` runs
# (HYPOTHESIS_MAX_EXAMPLES overrides the count); failures are kept in .hypothesis/.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(VENV)/bin/python -m pytest -q tests/properties $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/python bench/run.py

deb:
	sh packaging/build-deb

clean:
	rm -rf $(VENV) .hypothesis build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache packaging/out
