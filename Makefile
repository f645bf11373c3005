# Two commands: `make book` builds the executed book, `make test` runs every check.
# Both make (or reuse) .venv and install what they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The torch this machine installs when none is present (a CPU wheel here); a torch that is
# already installed system-wide (Colab) is kept and seen by the venv.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.fusionlab-installed
JB := TQDM_DISABLE=1 $(VENV)/bin/jupyter-book build book -W -n --keep-going

.PHONY: install book test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "keeping the installed torch"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	else $(PYTHON) -m venv $(VENV); fi
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[book,test]"
	touch $(STAMP)

book: $(STAMP)
	$(JB)
	@echo "The book is in book/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest tests
	FUSIONLAB_PROFILE=smoke TQDM_DISABLE=1 $(PY) -m pytest --nbval-lax book/chapters
	FUSIONLAB_PROFILE=smoke $(JB) --path-output build/smoke-book

clean:
	rm -rf book/_build build
