# The two commands of the README. Both create .venv on first use (one-off;
# later runs install and build nothing) and then do their job.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= work_dirs/demo
PYTEST_ARGS ?=
# e.g. RESULTS_ARGS=--report-only to only redraw tables and figures
RESULTS_ARGS ?=

.PHONY: venv test demo bench results docs clean-demo

venv:
	@PYTHON=$(PYTHON) VENV=$(abspath $(VENV)) bash tools/misc/setup_venv.sh

test: venv
	$(PY) -m pytest tests $(PYTEST_ARGS)

demo: venv
	$(PY) tools/run_demo.py --work-dir $(DEMO_DIR)

bench: venv
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# issue #17: every wsss_row config (CAM baseline, IG-CAM and CamGuide rows),
# the final model on the best pseudo-labels, the one on the baseline + dCRF
# labels (the demo bed's figures) and the upper bound on the 3 held-out
# dataset seeds (3,000 train images, final models 2,400 iterations; hours on
# CPU; finished stages are skipped), then the tables and PNGs in
# docs/en/_static/results/v<generator version>
RESULTS_SEEDS ?= 100 101 102
results: venv
	$(PY) tools/analysis_tools/wsss_results.py --seeds $(RESULTS_SEEDS) \
		--update-readmes $(RESULTS_ARGS)

# issue #21: the documentation site (sphinx + MyST, offline), warnings as
# errors; open docs/en/_build/html/index.html
docs: venv
	$(PY) -m sphinx -W --keep-going -b html docs/en docs/en/_build/html

clean-demo:
	rm -rf $(DEMO_DIR) data/demo
