# The two commands of the README. Both work from a fresh clone: they create .venv on first use.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.cones-installed

.PHONY: install demo test

install: $(STAMP)

# torch is pinned here (and loose in pyproject.toml) so that no install ever resolves the newest
# torch with its gigabytes of CUDA wheels; Slicer's PyTorch extension brings its own build.
# nnU-Net goes in without timm (and so torchvision, whose PyPI build does not import beside the CPU
# torch wheel): nnU-Net's inference and planning never import them.
NNUNET_WITHOUT_TIMM = $(PYTHON) -m pip install --quiet --no-deps "nnunetv2>=2.5" dynamic-network-architectures \
	&& $(PYTHON) -m pip install --quiet torch==2.13.0 acvl-utils batchgenerators batchgeneratorsv2 blosc2 einops \
	graphviz imagecodecs pandas requests scikit-learn seaborn tifffile yacs

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e ".[dev,sample,slicer,onnx,prepare]" torch==2.13.0
	$(NNUNET_WITHOUT_TIMM)
	touch $@

demo: $(STAMP)
	$(PYTHON) -m cones.demo --output demo-output --overwrite

test: $(STAMP)
	$(PYTHON) -m pytest Testing -q
