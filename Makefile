# The README's two commands: `make demo` and `make test`. Both install into .venv first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
LAVA    := lava-nc==0.10.0

.PHONY: install demo test bench clean

install: $(STAMP)

# Re-runs only when the dependency list changes. lava-nc declares Python <3.11 but runs on 3.11,
# so it alone goes in with --no-deps --ignore-requires-python; its real needs are in pyproject.toml.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python $(LAVA)
	touch $(STAMP)

demo: install
	$(BIN)/neuromap demo

# ruff, mypy: [tool.ruff], [tool.mypy] in pyproject.toml; lint-imports: the layering contracts
test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

bench: install
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) out build *.egg-info
