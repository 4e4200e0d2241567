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

.PHONY: install install-run run test lint typecheck pytest bench previews i18n clean image deploy-test

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
	$(VENV)/bin/ruff check avatarbot bot adapters generation provenance tests bench deploy
	$(VENV)/bin/ruff format --check avatarbot bot adapters generation provenance tests bench deploy
	$(VENV)/bin/lint-imports  # the layer contracts in pyproject.toml

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest

test: lint typecheck pytest

# Benches run as modules from the repository root, so they import the test fakes
# (tests/fake_*.py, tests/fake_backends.py) as the `tests` package, without path edits.
bench: install
	$(PY) -m bench.intake_bench
	$(PY) -m bench.queue_bench
	$(PY) -m bench.styles_bench
	$(PY) -m bench.likeness_bench
	$(PY) -m bench.labelling_bench
	$(PY) -m bench.i18n_bench
	$(PY) -m bench.telegram_load
	$(PY) -m bench.pixel_bomb_bench
	$(PY) -m bench.diffusers_bench  # full size needs CUDA; says so and exits 0 without

previews: install
	$(VENV)/bin/avatarbot previews

# Container image (docs/deployment.md): podman, or docker when podman is absent.
#   make image                          the bot + CPU worker image, localhost/avatarbot:latest
#   make image VARIANT=cuda             the diffusers worker (torch 2.13.0), avatarbot-cuda
#   make image BASE=localhost/debian-bookworm:min   any Debian-family base (see Dockerfile)
#   make image CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt   pip trusts this bundle in the
#                                       build (behind a TLS-intercepting proxy; podman only)
ENGINE    ?= $(if $(shell command -v podman 2>/dev/null),podman,docker)
VARIANT   ?= cpu
IMAGE     ?= localhost/$(if $(filter cuda,$(VARIANT)),avatarbot-cuda,avatarbot):latest
BASE      ?=
CA_BUNDLE ?=
IMAGE_ARGS = $(if $(BASE),--build-arg BASE=$(BASE)) \
	$(if $(filter cuda,$(VARIANT)),--build-arg EXTRAS=diffusion --build-arg BACKEND=diffusers) \
	$(if $(filter podman,$(ENGINE)),--format docker) \
	$(if $(CA_BUNDLE),--network=host -v $(abspath $(CA_BUNDLE)):/run/host-ca.crt:ro \
	  --build-arg PIP_CERT=/run/host-ca.crt)

image:
	$(ENGINE) build $(strip $(IMAGE_ARGS)) -t $(IMAGE) .

# Builds the image on a local Debian base and runs deploy/ under `podman kube play`
# (docs/deployment.md, "Tested end to end"). Needs root, podman, runc and debootstrap.
deploy-test: install
	deploy/podman/deploy-test.sh

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
