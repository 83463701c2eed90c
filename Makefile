# Two commands do all set-up on a fresh machine:
#   make demo   creates .venv if missing, installs the package, runs `pix2pix demo`
#   make test   creates .venv if missing, installs the package and test tools, runs the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out
PYTEST_ARGS ?=
# Tests run in 2 worker processes: most wait on subprocesses and I/O, so 2 cores are kept busy.
PYTEST_WORKERS ?= 2

.PHONY: demo test test-fast bench quality image image-test clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,plots]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/pix2pix demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run.py

quality: $(STAMP)
	$(PY) bench/quality.py

# The CPU image the pipeline specs name (docker/build.sh --help: gpu, --tag, --push, --local-base).
image:
	docker/build.sh cpu $(IMAGE_ARGS)

# CI step after `test`: build the CPU image with buildah and run the pipelines in it (SKIP without).
image-test: $(STAMP)
	PY=$(PY) PYTEST_ARGS="$(PYTEST_ARGS)" docker/image-test.sh

clean:
	rm -rf $(VENV) .pix2pix $(DEMO_OUT) build *.egg-info
