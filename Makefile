# gdbext: `make demo` and `make test` are the two commands of the README's Quick start.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gdbext-installed
CORES  := fixtures/cores

.PHONY: venv demo test fixtures bench clean

$(STAMP): setup.py
	@$(PYTHON) -m venv $(VENV) || { \
	  echo "make: '$(PYTHON) -m venv' failed; on Debian: apt-get install python3-venv"; rm -rf $(VENV); exit 1; }
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(STAMP)

demo: venv
	@$(BIN)/gdbext gdb $(CORES)/pool_overflow $(CORES)/pool_overflow.core.xz \
	  --specs fixtures/specs/pool_overflow.py \
	  -ex 'echo \n== the crash: a segfault inside the pool allocator\n' -ex 'bt' \
	  -ex 'echo \n== the pool, as the gdbext pool printer shows it\n' -ex 'set print pretty on' -ex 'print g_pool'
	@$(BIN)/gdbext gdb $(CORES)/sensor $(CORES)/sensor.core.xz --specs fixtures/specs/sensor.py \
	  -ex 'echo \n== DWARF bitfields and a hand-packed word, decoded\n' \
	  -ex 'print g_status' -ex 'print g_bad_status' -ex 'print g_word' -ex 'print g_frames[0]'

test: venv
	$(BIN)/python -m pytest -q tests

fixtures:
	fixtures/make-cores.sh

bench: venv
	$(BIN)/python benchmarks/heapwalk_bench.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
