# Two commands: `make book` builds the executed book, `make test` runs every check.
# Both make (or reuse) .venv and install what they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The torch this machine installs when none is present (a CPU wheel here); a torch that is
# already installed system-wide (Colab) is kept and seen by the venv.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.fusionlab-installed
# --all: Sphinx would otherwise skip a chapter whose notebook is unchanged, and keep outputs
# made from reference results that have changed since
JB := TQDM_DISABLE=1 $(VENV)/bin/jupyter-book build book --all -W -n --keep-going
SMOKE_HTML := build/smoke-book/_build/html

# The book serves its own JavaScript: MathJax typesets the formulas, require.js and the
# widget manager run the sliders with no network. The three npm packages (about 11 MB packed,
# 8 MB of it needed) are fetched at build time rather than committed, pinned to a version and
# checked against these SHA-512 digests (npm's `integrity`, base64) before anything is unpacked.
# They land in book/_extra/vendor (Sphinx's html_extra_path: copied beside the pages, outside
# _static, whose .js files jupyter-book would load on every page).
VENDOR := book/_extra/vendor
NPM_MATHJAX := mathjax@3.2.2
SHA_MJ := Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==
NPM_WIDGETS := @jupyter-widgets/html-manager@1.0.15
SHA_WG := 5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==
NPM_REQUIRE := requirejs@2.3.8
SHA_RQ := 7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==
NPM_CACHE := build/npm

# $(call unpack,package@version,sha512,folder under $(VENDOR)): download, check, extract.
define unpack
	cd $(NPM_CACHE) && npm pack --silent --pack-destination . "$(1)" > name.txt
	@test "$$(openssl dgst -sha512 -binary $(NPM_CACHE)/$$(cat $(NPM_CACHE)/name.txt) | base64 -w0)" \
	  = "$(2)" || { echo "$(1): SHA-512 differs from the pinned digest"; exit 1; }
	rm -rf $(NPM_CACHE)/$(3) && mkdir -p $(NPM_CACHE)/$(3)
	tar -xzf $(NPM_CACHE)/$$(cat $(NPM_CACHE)/name.txt) -C $(NPM_CACHE)/$(3)
endef

.PHONY: install vendor book test clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "keeping the installed torch"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	else $(PYTHON) -m venv $(VENV); fi
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH_SPEC)"
	@# the distribution was called fusionlab before it became fusionlab-book: drop the old one
	$(PY) -m pip uninstall -q -y fusionlab 2>/dev/null || true
	$(PY) -m pip install -e ".[book,test]"
	touch $(STAMP)

vendor: $(VENDOR)/.complete

$(VENDOR)/.complete: Makefile
	rm -rf $(VENDOR) && mkdir -p $(NPM_CACHE) $(VENDOR)/mathjax/input/tex \
	  $(VENDOR)/mathjax/output/chtml/fonts $(VENDOR)/html-manager $(VENDOR)/requirejs
	$(call unpack,$(NPM_MATHJAX),$(SHA_MJ),mathjax)
	cd $(NPM_CACHE)/mathjax/package && cp LICENSE es5/tex-mml-chtml.js $(CURDIR)/$(VENDOR)/mathjax/ \
	  && cp -r es5/input/tex/extensions $(CURDIR)/$(VENDOR)/mathjax/input/tex/ \
	  && cp -r es5/output/chtml/fonts/woff-v2 $(CURDIR)/$(VENDOR)/mathjax/output/chtml/fonts/
	$(call unpack,$(NPM_WIDGETS),$(SHA_WG),html-manager)
	cd $(NPM_CACHE)/html-manager/package && cp package.json dist/embed-amd.js \
	  dist/embed.js.LICENSE.txt dist/*.woff dist/*.woff2 dist/*.ttf dist/*.eot dist/*.svg \
	  $(CURDIR)/$(VENDOR)/html-manager/
	$(call unpack,$(NPM_REQUIRE),$(SHA_RQ),requirejs)
	cp $(NPM_CACHE)/requirejs/package/require.js $(NPM_CACHE)/requirejs/package/package.json \
	  $(VENDOR)/requirejs/
	touch $@

book: $(STAMP) $(VENDOR)/.complete
	$(JB)
	@echo "The book is in book/_build/html/index.html"

test: $(STAMP) $(VENDOR)/.complete
	$(PY) -m pytest tests --ignore=tests/browser
	FUSIONLAB_PROFILE=smoke TQDM_DISABLE=1 $(PY) -m pytest --nbval-lax book/chapters
	@# every chapter at the gpu profile's sizes, widths, output strides and loader workers,
	@# for two steps on the CPU (FUSIONLAB_DRY_RUN): what Colab runs, minus the time
	FUSIONLAB_PROFILE=gpu FUSIONLAB_DRY_RUN=1 TQDM_DISABLE=1 $(PY) -m pytest --nbval-lax book/chapters
	FUSIONLAB_PROFILE=smoke $(JB) --path-output build/smoke-book
	FUSIONLAB_BOOK_HTML=$(SMOKE_HTML) $(PY) -m pytest tests/browser

clean:
	rm -rf book/_build book/_extra/vendor build
