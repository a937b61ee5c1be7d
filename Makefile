# The two commands of the README. Both create .venv on first use (one-off;
# later runs install and build nothing) and then do their job.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= work_dirs/demo
PYTEST_ARGS ?=
# e.g. RESULTS_ARGS=--report-only to only redraw tables and figures
RESULTS_ARGS ?=

.PHONY: venv test demo bench results clean-demo

venv:
	@PYTHON=$(PYTHON) VENV=$(abspath $(VENV)) bash tools/misc/setup_venv.sh

test: venv
	$(PY) -m pytest tests $(PYTEST_ARGS)

demo: venv
	$(PY) tools/run_demo.py --work-dir $(DEMO_DIR)

bench: venv
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# issue #17: every wsss_row config (CAM baseline, IG-CAM and CamGuide rows),
# the final model on the best pseudo-labels and the upper bound on the 3
# held-out dataset seeds (hours on CPU; finished stages are skipped), then
# the tables and PNGs in docs/en/_static/results/v<generator version>
RESULTS_SEEDS ?= 100 101 102
results: venv
	$(PY) tools/analysis_tools/wsss_results.py --seeds $(RESULTS_SEEDS) \
		--update-readmes $(RESULTS_ARGS)

clean-demo:
	rm -rf $(DEMO_DIR) data/demo
