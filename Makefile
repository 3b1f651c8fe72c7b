# Two commands for users: `make demo` (set up, run the main job on built-in data) and `make test`.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.earthport-installed
EXTRAS ?= mindspore,samples,dev

.PHONY: setup test demo lint clean bench-setup

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

test: setup
	$(VENV)/bin/ruff check earthport tests benchmarks
	$(PYTHON) -m pytest -q

demo: setup
	$(VENV)/bin/earthport demo --out runs/demo

bench-setup: setup
	$(PYTHON) -m pip install --quiet --no-deps mindearth-ascend==0.3.0

lint: setup
	$(VENV)/bin/ruff check earthport tests benchmarks

clean:
	rm -rf runs build *.egg-info
