# Two commands on a fresh machine: `make demo` (a blind DASR vs a non-blind BSRNet vs bicubic on real photos) and
# `make test` (the test suite). Both create .venv and install everything on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.blindsr-installed

.PHONY: demo test install browser clean

install: $(STAMP) browser

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m blindsr.demo

# tests/test_report.py opens the benchmark's HTML page in headless Chromium (Debian's package, as root)
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -q chromium; } || echo 'warning: could not install chromium; tests/test_report.py will fail'

test: $(STAMP) browser
	$(PY) -m pytest -q

clean:
	rm -rf experiments results demo_data
