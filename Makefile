# netlapse set-up: `make demo` runs the tour, `make test` runs the tests.
# Both create .venv if it is missing and install what they need into it, torch first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0

.PHONY: demo test venv deps-demo deps-test browser clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=25.1"

# torch goes in first and alone: any other spelling pulls a multi-GB CUDA build.
$(VENV)/.torch: | $(PY)
	$(PIP) install -q $(TORCH)
	touch $@

$(VENV)/.deps-demo: pyproject.toml setup.py netlapse/_csummary.c $(VENV)/.torch
	$(PIP) install -q -e ".[demo]"
	$(PY) scripts/check_torch.py
	touch $@

$(VENV)/.deps-test: pyproject.toml setup.py netlapse/_csummary.c $(VENV)/.torch
	$(PIP) install -q -e ".[all]" --group dev
	$(PY) scripts/check_torch.py
	touch $@

deps-demo: $(VENV)/.deps-demo
deps-test: $(VENV)/.deps-test

browser:
	@bash scripts/install_browser.sh

demo: $(VENV)/.deps-demo
	$(VENV)/bin/netlapse demo $(ARGS)

# the compiled summary kernel must have been built here (it is optional for users)
test: $(VENV)/.deps-test browser
	NETLAPSE_REQUIRE_CKERNEL=1 $(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) netlapse-demo .pytest_cache
