# crlkit — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

# torch first, pinned to the release whose CPU wheel lies on local disk: a bare
# `torch>=2.2` in a fresh venv would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,chamber]'
	touch $(STAMP)

demo: install
	$(BIN)/crlkit demo --out runs/demo

test: install
	$(BIN)/python -m pytest

bench: install
	@cat bench/README.md

clean:
	rm -rf $(VENV) runs build *.egg-info
