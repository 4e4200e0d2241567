# avatarbot: `make run` to try it, `make test` to check it. Both set up .venv themselves.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# diffusion: torch==2.13.0 (CPU wheel) + diffusers, for the diffusers backend's tests and types
EXTRAS ?= dev,diffusion

.PHONY: install run test lint typecheck pytest bench previews clean

$(VENV)/.installed-$(EXTRAS): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

install: $(VENV)/.installed-$(EXTRAS)

run: install
	$(VENV)/bin/avatarbot run

lint: install
	$(VENV)/bin/ruff check bot adapters generation tests bench
	$(VENV)/bin/ruff format --check bot adapters generation tests bench

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest

test: lint typecheck pytest

bench: install
	$(PY) bench/intake_bench.py
	$(PY) bench/queue_bench.py
	$(PY) bench/styles_bench.py
	$(PY) bench/labelling_bench.py
	$(PY) bench/diffusers_bench.py  # full size needs CUDA; says so and exits 0 without

previews: install
	$(VENV)/bin/avatarbot previews

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
