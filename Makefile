# The README's two commands: `make demo` (main job end to end on a phantom) and `make test` (test suite).
# Both do the whole set-up first (scripts/setup_env.sh): ./.venv, or the activated virtual environment.
VENV ?= .venv
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,$(VENV)/bin/python)
BIN := $(dir $(PY))

.PHONY: setup demo test test-fast
setup:
	bash scripts/setup_env.sh $(VENV)

demo: setup
	$(BIN)nnunetv2-dca demo --out demo_output

test: setup
	$(PY) -m pytest -ra

# the tests that start no subprocess and train nothing (a few minutes); `make test` runs all of them
test-fast: setup
	$(PY) -m pytest -ra -m "not slow"
