# Two commands on a fresh machine:
#   make run    - create .venv, install everything, start the app on data/library
#   make test   - create .venv, install everything (and headless Chromium), run the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ASPL_DB ?= data/library

.PHONY: run test install browser bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# facenet-pytorch pins old torch/numpy/Pillow; its code works with current ones.
	$(PY) -m pip install --quiet --no-deps facenet-pytorch==2.6.0
	touch $(STAMP)

browser:
	bash scripts/install_browser.sh

run: $(STAMP)
	ASPL_DB=$(ASPL_DB) $(VENV)/bin/streamlit run app.py --server.headless true

test: $(STAMP) browser
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/import_bench.py
	$(PY) bench/backbones.py
	$(PY) bench/engine_bench.py

clean:
	rm -rf $(VENV) .pytest_cache
