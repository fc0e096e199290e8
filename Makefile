# `make demo` and `make test` work from a fresh clone: they create .venv and install into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all test-cluster lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CI's versions (constraints.txt); pyproject.toml itself gives ranges (docs/install.md)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# The reference NAS-Bench-201 supernets for `gmnas bench` (its own deps would pull other torch builds).
	$(BIN)/pip install -q --no-deps xautodl==1.0.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gmnas run experiment=demo

# Two pytest-xdist workers: a 2-core machine runs two tests at a time (session fixtures are built once).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m ''

# Scale-out end to end (submitit requeue, torchrun 2 ranks on gloo, a -m seed sweep): about 3 min on 2 cores; .ci/run runs it.
test-cluster: $(STAMP)
	$(BIN)/python -m pytest -m slow tests/test_cluster.py tests/test_report_sweep.py

lint: $(STAMP)
	$(BIN)/ruff check gmnas_cli tests

bench: $(STAMP)
	$(BIN)/gmnas bench bench.reference=xautodl bench.threads_compare=[1,2]

clean:
	rm -rf $(VENV) outputs/* multirun
