# The README's two commands: `make demo` (the main job on the local lab) and `make test` (the suite).
# Each installs what it needs (Debian packages, a virtualenv) and starts the services it needs.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint unit clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
	python3 -m venv $(VENV)
	# compat: the project folder on sys.path through a plain .pth: no code runs at interpreter start, as with a
	# wheel install (setuptools' default editable finder imports pathlib, fnmatch and urllib: ~10 ms of every start)
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=compat
	$(BIN)/python -m compileall -q archfleet  # bytecode, as a wheel install has (PYTHONDONTWRITEBYTECODE=1 or not)
	touch $@

## The main job on the local lab: lab up, host bootstrap, images, services, verify. The lab stays up
## afterwards for you to use; `.venv/bin/archfleet lab down` removes it.
demo: setup
	$(BIN)/archfleet demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

## Tests that need no lab (facts, operations, schema, builders).
unit: setup
	$(BIN)/pytest -m 'not lab'

## Everything: lint and the whole suite against a lab brought up from nothing (tests/run_suite.sh: lab down, then
## lint and the tests without the lab alongside `archfleet demo` from the lab that is down, then the other lab tests,
## then lab down). One run at a time holds the lab (the lock): a second run waits for it, at most LAB_LOCK_WAIT
## seconds, then fails saying so. Caches of slow things outlive `lab down` (/var/cache/archfleet).
LAB_LOCK := /run/lock/archfleet-lab-tests.lock
LAB_LOCK_WAIT ?= 3600
test: setup
	@flock -n $(LAB_LOCK) true || echo "make test: another test run holds the lab ($(LAB_LOCK)); waiting for it"
	@flock -w $(LAB_LOCK_WAIT) -E 75 $(LAB_LOCK) bash tests/run_suite.sh || { status=$$?; \
		if [ $$status = 75 ]; then echo "make test: the lab's lock ($(LAB_LOCK)) was still held after" \
			"$(LAB_LOCK_WAIT)s: another run has it (see: lslocks)" >&2; fi; exit $$status; }

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
