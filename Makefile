# Two commands on a fresh machine: `make demo` (a blind DASR vs a non-blind BSRNet vs bicubic on real photos) and
# `make test` (the test suite). Both create .venv and install everything on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.blindsr-installed

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m blindsr.demo

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf experiments results demo_data
