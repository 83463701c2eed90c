# Two commands do all set-up on a fresh machine:
#   make demo   creates .venv if missing, installs the package, runs `pix2pix demo`
#   make test   creates .venv if missing, installs the package and test tools (and headless
#               Chromium for the browser test, where root and apt-get can), runs the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-out
PYTEST_ARGS ?=
# Tests run in 2 worker processes: most wait on subprocesses and I/O, so 2 cores are kept busy.
PYTEST_WORKERS ?= 2

.PHONY: demo test test-fast bench quality image image-test browser clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,plots,wandb]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/pix2pix demo --out $(DEMO_OUT)

test: $(STAMP) browser
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

# CI step before `test`: headless Chromium and its WebDriver (Debian's chromium and
# chromium-driver) for the web page's browser test. Needs root and apt-get; where it cannot
# install them it prints one SKIP line and succeeds, and that test skips with its reason.
BROWSER_APT_LOG ?= $(or $(TMPDIR),/tmp)/pix2pix-browser-apt.log
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  echo "browser: chromium and chromedriver are installed"; \
	elif [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	  echo "SKIP: browser: installing chromium needs root and apt-get; the browser test will skip"; \
	elif { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	         chromium chromium-driver; } >$(BROWSER_APT_LOG) 2>&1; then \
	  echo "browser: installed $$(chromium --version 2>/dev/null)"; \
	else \
	  echo "SKIP: browser: apt-get install chromium chromium-driver failed (log: $(BROWSER_APT_LOG)); the browser test will skip"; \
	fi

clean:
	rm -rf $(VENV) .pix2pix $(DEMO_OUT) build *.egg-info
