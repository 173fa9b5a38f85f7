# Setup, tests and the figure pipeline. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= $(abspath ../shared/data)
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
PROFILE ?= full

.PHONY: setup test reports quick clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[notebooks,translation,test]'
	touch $@

setup: $(VENV)/.installed

test: setup
	HF_HOME=$$(mktemp -d) $(OFFLINE) TSDTP_DATA_DIR=$(DATA) $(PY) -m pytest

reports: setup
	$(OFFLINE) TSDTP_DATA_DIR=$(DATA) $(VENV)/bin/tsdtp reproduce --profile $(PROFILE)

quick:
	$(MAKE) reports PROFILE=quick

clean-venv:
	rm -rf $(VENV)
