# Two commands for users: `make demo` (set up, run the main job on built-in data) and `make test`.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.earthport-installed
EXTRAS ?= mindspore,samples,dev

.PHONY: setup test test-all demo lint clean bench-setup

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	@# Debian's Chromium renders the study's HTML report in a screenshot test (skipped, with the reason, without it)
	command -v chromium >/dev/null || timeout 600 apt-get install -y -q chromium >/dev/null 2>&1 \
		|| (timeout 300 apt-get update -q >/dev/null 2>&1 && timeout 600 apt-get install -y -q chromium >/dev/null 2>&1) \
		|| echo "note: chromium could not be installed; the HTML screenshot test will be skipped"
	touch $(STAMP)

# Tests marked slow (the quick study, the large regrid, ...) run in CI (CI=true) and with `make test-all`.
MARKERS ?= $(if $(CI),,not slow)

test: lint
	$(PYTHON) -m pytest -q -m "$(MARKERS)"

test-all: lint
	$(PYTHON) -m pytest -q

demo: setup
	$(VENV)/bin/earthport study --out runs/study

bench-setup: setup
	$(PYTHON) -m pip install --quiet --no-deps mindearth-ascend==0.3.0

# ruff, the architecture contracts (import-linter, pyproject.toml) and mypy on the framework-free packages
lint: setup
	$(VENV)/bin/ruff check earthport tests benchmarks
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

clean:
	rm -rf runs build *.egg-info
