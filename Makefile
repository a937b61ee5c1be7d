# The two commands of the README. Both create .venv on first use (one-off;
# later runs install and build nothing) and then do their job.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= work_dirs/demo
PYTEST_ARGS ?=

.PHONY: venv test demo bench clean-demo

venv:
	@PYTHON=$(PYTHON) VENV=$(abspath $(VENV)) bash tools/misc/setup_venv.sh

test: venv
	$(PY) -m pytest tests $(PYTEST_ARGS)

demo: venv
	$(PY) tools/run_demo.py --work-dir $(DEMO_DIR)

bench: venv
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean-demo:
	rm -rf $(DEMO_DIR) data/demo
