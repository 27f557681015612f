# Two commands set everything up on a fresh machine:
#   make demo   installs the application in .venv and trains + tests on the built-in demo data
#   make test   installs the application and the test tools, then runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := PIP_BUILD_CONSTRAINT=$(CURDIR)/build-constraints.txt $(PY) -m pip install --disable-pip-version-check

.PHONY: install install-test demo test

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(VENV)/.installed: requirements.txt build-constraints.txt | $(VENV)/bin/python
	$(PY) -m pip install --disable-pip-version-check --upgrade "pip>=26"
	$(PIP) -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt $(VENV)/.installed
	$(PIP) -r requirements-test.txt
	bash scripts/install_system_test_deps.sh
	$(PY) scripts/setup_visdom_offline.py
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(PY) train.py --name demo
	$(PY) test.py --name demo

test: install-test
	$(PY) -m pytest -q
