# The README's two commands: `make demo` and `make test`. Both install into .venv first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
LAVA    := lava-nc==0.10.0
# The SNN frameworks the interop tests export from (and tonic, the event-data reader). Their declared
# dependencies would replace our torch (norse: torchvision -> torch 2.14) or nir (sinabs pins nir 1.0.4 and
# wants samna, a hardware driver), so they go in with --no-deps; what they really import is listed here or
# in pyproject.toml.
FRAMEWORKS := norse==1.1.0 sinabs==3.1.3 pbr==7.1.3 rockpool==3.1.0 tonic==1.7.0 importRosbag==1.0.4 \
              expelliarmus==1.1.12

.PHONY: install demo test docs bench clean mutation

install: $(STAMP)

# Re-runs only when the dependency list changes. lava-nc declares Python <3.11 but runs on 3.11,
# so it alone goes in with --no-deps --ignore-requires-python; its real needs are in pyproject.toml.
# The report's browser test (tests/test_report_html.py) drives Debian's chromium through playwright: it is
# installed with apt-get (through sudo unless root) where /usr/bin/chromium is missing.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python $(LAVA)
	$(BIN)/python -m pip install -q --no-deps $(FRAMEWORKS)
	test -x /usr/bin/chromium || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update -q && $$SUDO apt-get install -y chromium; }
	touch $(STAMP)

demo: install
	$(BIN)/neuromap demo

# ruff, mypy: [tool.ruff], [tool.mypy] in pyproject.toml; lint-imports: the layering contracts
test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# The docs site (mkdocs.yml), offline, into site/; --strict: a warning (a broken link, a docstring mkdocstrings
# cannot read) fails the build, as tests/test_docs.py does
docs: install
	$(BIN)/mkdocs build --strict

bench: install
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) out build site *.egg-info

# Mutation testing (not part of `make test`: minutes per module). mutmut mutates a copy of the tree in
# MUTATION_DIR, so the checkout stays clean; [tool.mutmut] in pyproject.toml names the modules it mutates
# (only_mutate) and the test files that exercise them. Pick modules with mutant-name globs, e.g.
#   make mutation MUTANTS='hwsim.gpu.* hwsim.fixed.*'      (default: every module of only_mutate)
# then `cd $(MUTATION_DIR) && mutmut results` lists the survivors and `mutmut show NAME` shows one.
MUTATION_DIR ?= /tmp/neuromap-mutation
MUTANTS ?=

mutation: install
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR)
	tar --exclude=./.git --exclude=./.venv --exclude=./mutants -cf - . | tar -xf - -C $(MUTATION_DIR)
	cd $(MUTATION_DIR) && nice -n 10 $(abspath $(BIN))/mutmut run --max-children 2 $(foreach m,$(MUTANTS),'$(m)')
	cd $(MUTATION_DIR) && $(abspath $(BIN))/mutmut results
