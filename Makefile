# gdbext: `make demo` and `make test` are the two commands of the README's Quick start.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gdbext-installed
CORES  := fixtures/cores

.PHONY: venv demo test fixtures bench accuracy clean

$(STAMP): setup.py
	@$(PYTHON) -m venv $(VENV) || { \
	  echo "make: '$(PYTHON) -m venv' failed; on Debian: apt-get install python3-venv"; rm -rf $(VENV); exit 1; }
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
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

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
