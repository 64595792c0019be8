# gdbext: `make demo` and `make test` are the two commands of the README's Quick start.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gdbext-installed
CORES  := fixtures/cores

.PHONY: venv demo test fixtures bench accuracy wheel clean demo-html realheaps

$(STAMP): setup.py
	@echo "make: setting up $(VENV) (pip install -e '.[test]')"
	@$(PYTHON) -m venv $(VENV) || { \
	  echo "make: '$(PYTHON) -m venv' failed; on Debian: apt-get install python3-venv"; rm -rf $(VENV); exit 1; }
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(STAMP)

# The main job on the shipped pool-overflow core: exit code 1 means "findings", which is the point here.
demo: venv
	@$(BIN)/gdbext triage $(CORES)/pool_overflow $(CORES)/pool_overflow.core.xz \
	  --pools fixtures/specs/pool_overflow.py; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 1 ]

test: venv
	$(BIN)/python -m pytest -q tests

fixtures:
	fixtures/make-cores.sh

bench: venv
	$(BIN)/python benchmarks/heapwalk_bench.py

# The ASan-oracle corpus: agreement of gdbext's findings with AddressSanitizer.
# SEEDS=0:200 is the CI subset (tests/test_oracle_corpus.py); the default is the full run.
SEEDS ?= 0:2000
accuracy: venv
	$(BIN)/python benchmarks/accuracy.py --seeds $(SEEDS) --json accuracy.json

# A wheel to install without a checkout (README: "Installing without a checkout").
wheel: venv
	@$(BIN)/python -m pip wheel -q --no-deps -w dist .
	@ls dist/gdbext-*.whl

# every real-program heap against glibc's own accounting (make test runs the fast half)
realheaps: venv
	GDBEXT_REALHEAPS=all $(BIN)/python -m pytest -q tests/test_real_heaps.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

# The demo's core as one self-contained HTML page (crash, finding, SVG heap map, hexdump): build/demo.html.
demo-html: venv
	@mkdir -p build
	@$(BIN)/gdbext triage $(CORES)/pool_overflow $(CORES)/pool_overflow.core.xz \
	  --pools fixtures/specs/pool_overflow.py --format html --output build/demo.html; status=$$?; \
	  [ $$status -eq 0 ] || [ $$status -eq 1 ] && echo "wrote build/demo.html"
