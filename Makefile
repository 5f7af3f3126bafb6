# Two commands on a fresh machine:
#   make run    - create .venv, install everything, start the app on data/library
#   make test   - create .venv, install everything (and headless Chromium, PostgreSQL's server binaries),
#                 run the tests: all of them on SQLite, then the storage, service and app tests on PostgreSQL
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ASPL_DB ?= data/library

.PHONY: run test install browser postgres bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# facenet-pytorch pins old torch/numpy/Pillow; its code works with current ones.
	$(PY) -m pip install --quiet --no-deps facenet-pytorch==2.6.0
	touch $(STAMP)

browser:
	bash scripts/install_browser.sh

postgres:
	bash scripts/install_postgres.sh

run: $(STAMP)
	ASPL_DB=$(ASPL_DB) $(VENV)/bin/streamlit run app.py --server.headless true

# The PostgreSQL half: the libraries the test helpers make live on a throwaway server (tests/pgserver.py);
# skipped, and said so, where no server binaries could be installed.
PG_TESTS := tests/test_storage_*.py tests/test_service_*.py tests/test_app_*.py tests/test_import*.py \
	tests/test_index*.py tests/test_uploads_faults.py

test: $(STAMP) browser postgres
	$(PY) -m pytest
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then \
		ASPL_TEST_DB=postgresql $(PY) -m pytest -q -p no:cacheprovider $(PG_TESTS); \
	else echo "PostgreSQL half skipped: no server binaries (scripts/install_postgres.sh needs root)"; fi

bench: $(STAMP)
	$(PY) bench/import_bench.py
	$(PY) bench/backbones.py
	$(PY) bench/engine_bench.py

clean:
	rm -rf $(VENV) .pytest_cache
