# The two commands of the README. Both work from a fresh clone: they create .venv on first use.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.cones-installed

.PHONY: install test

install: $(STAMP)

# torch is pinned here (and loose in pyproject.toml) so that no install ever resolves the newest
# torch with its gigabytes of CUDA wheels; Slicer's PyTorch extension brings its own build.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e ".[dev,sample,slicer]"
	touch $@

test: $(STAMP)
	$(PYTHON) -m pytest Testing -q
