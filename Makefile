# The two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
# checkov lives in a venv of its own (see requirements-checkov.txt); inside .venv so `make clean` removes it.
CHECKOV_VENV := $(VENV)/checkov
STAMP_CHECKOV := $(CHECKOV_VENV)/.installed

.PHONY: run test lint bench bench-load bench-poll bench-peak bench-ledger drop demo install clean chromium report-screenshot

install: $(STAMP_PY) $(STAMP_NODE) $(STAMP_CHECKOV)

$(STAMP_PY): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(STAMP_CHECKOV): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON_BOOT) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

local.settings.json:
	cp local.settings.sample.json $@

run: install local.settings.json
	$(PY) -m local.run

# Debian's chromium, for the test that opens the HTML report headless (tests/test_report_chromium.py).
chromium:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; } || \
	  { echo "make chromium: no chromium on the PATH and no apt-get as root to install it; install Chromium and put a chromium command on the PATH" >&2; exit 2; }
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core)

# docs/report-rejected.png, the README's picture of a rejected file's report, made by that test.
report-screenshot: install chromium
	REPORT_SCREENSHOT=docs/report-rejected.png $(PY) -m pytest -q tests/test_report_chromium.py -k rejected

test: install chromium
	$(PY) -m ruff check . && $(PY) infra/checkov_gate.py $(CHECKOV_VENV)/bin/checkov
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(PY) infra/checkov_gate.py $(CHECKOV_VENV)/bin/checkov

bench: install
	$(PY) -m bench.validator_bench

bench-load: install
	$(PY) -m bench.load_bench

bench-poll: install
	$(PY) -m bench.poll_bench

bench-peak: install
	$(PY) -m bench.peak_bench $(PEAK_ARGS)

bench-ledger: install
	$(PY) -m bench.ledger_bench $(LEDGER_ARGS)

# NAME: the blob name (default: the file's name); FORCE=1: send it even if the same bytes were imported already.
drop: install
	@test -n "$(FILE)" || (echo "usage: make drop FILE=path/to/file [DOSSIER=DEMO001] [NAME=DEMO001/name.txt] [FORCE=1]" && exit 2)
	$(PY) -m local.drop "$(FILE)" $(if $(DOSSIER),--dossier "$(DOSSIER)") $(if $(NAME),--name "$(NAME)") $(if $(filter 1 true yes,$(FORCE)),--force)

demo: install
	$(PY) -m local.demo

clean:
	rm -rf $(VENV) node_modules .azurite .bench .pytest_cache .ruff_cache
