# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PRESET ?= d2l-fashion-mnist
OUT ?= runs/$(PRESET)
# pytest-xdist workers for `make test`: each test uses one thread, so one worker per core.
TEST_WORKERS ?= auto

.PHONY: run test test-all data lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# Finds Fashion-MNIST ($DENSENET_DATA, the cache, ../shared/data, Debian's package), or installs it.
data: $(VENV)/.installed
	bash scripts/ensure-data.sh $(PY)

run: data
	$(VENV)/bin/densenet train --preset $(PRESET) --out $(OUT)

# The summary line counts the skipped tests, and -rfEs (pyproject.toml) lists each skip with its reason.
# Collecting no tests at all (pytest's status 5) is a failure too.
test: $(VENV)/.installed-dev
	@status=0; $(PY) -m pytest -q -n $(TEST_WORKERS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests, which is a failure" >&2; fi; \
	exit $$status

test-all: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m ''

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) build *.egg-info
