# avatarbot: `make run` to try it, `make test` to check it. Both set up .venv themselves.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# `make run` installs only what the bot and the CPU worker need (no torch). `make test`
# adds the test tools and the diffusion extra: torch==2.13.0 (pinned through
# constraints.txt: a looser spec pulls a multi-GB CUDA build) + diffusers.
# For the diffusers backend: make run RUN_EXTRAS=diffusion AVATARBOT_BACKEND=diffusers
RUN_EXTRAS  ?=
TEST_EXTRAS ?= dev,diffusion

.PHONY: install install-run run test lint typecheck pytest bench previews i18n clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(VENV)/.installed-run-$(RUN_EXTRAS): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) install --disable-pip-version-check -q -c constraints.txt -e '.$(if $(RUN_EXTRAS),[$(RUN_EXTRAS)])'
	touch $@

$(VENV)/.installed-test-$(TEST_EXTRAS): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP) install --disable-pip-version-check -q -c constraints.txt -e '.[$(TEST_EXTRAS)]'
	touch $@

install-run: $(VENV)/.installed-run-$(RUN_EXTRAS)
install: $(VENV)/.installed-test-$(TEST_EXTRAS)

run: install-run
	$(VENV)/bin/avatarbot run

lint: install
	$(VENV)/bin/ruff check avatarbot bot adapters generation provenance tests bench
	$(VENV)/bin/ruff format --check avatarbot bot adapters generation provenance tests bench

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
	$(PY) bench/i18n_bench.py
	$(PY) bench/telegram_load.py
	$(PY) bench/diffusers_bench.py  # full size needs CUDA; says so and exits 0 without

previews: install
	$(VENV)/bin/avatarbot previews

# Catalogs (docs/languages.md): extract the English messages from the code into the
# template, merge it into every language's .po, compile the .mo files the bot loads.
# The compiled catalogs are committed, so `make run` needs no step of its own.
LOCALES := bot/locales
i18n: install
	$(VENV)/bin/pybabel extract -F babel.cfg -o $(LOCALES)/avatarbot.pot \
		--project=avatarbot --copyright-holder="the avatarbot authors" --add-location=file --sort-by-file --no-wrap \
		--add-comments=Translators: --strip-comment-tags \
		--header-comment="# avatarbot's messages: docs/languages.md says how to translate them." \
		bot adapters provenance
	$(VENV)/bin/pybabel update -i $(LOCALES)/avatarbot.pot -d $(LOCALES) -D avatarbot \
		--no-wrap --ignore-obsolete --no-fuzzy-matching --update-header-comment
	$(VENV)/bin/pybabel compile -d $(LOCALES) -D avatarbot --statistics

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
