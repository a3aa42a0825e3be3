# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format clean synth chromium

setup: $(STAMP) chromium

# Reinstall only when the dependency list changes, so the second `make setup` is instant.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[ml,infra,web,serve,dev]'
	@touch $(STAMP)

# The browser test drives Debian's chromium (no browser download by Playwright). Installed when
# missing and we can (root with apt, as in CI); otherwise that one test skips, saying why.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

# The CDK CLI comes from the npm registry into node_modules (no global install).
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

# Synthesizes offline (no AWS account, no Docker); the Lambda layer is built once, then cached.
synth: setup $(NODE_STAMP)
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" AWS_EC2_METADATA_DISABLED=true \
	  CDK_DISABLE_CLI_TELEMETRY=true node_modules/.bin/cdk synth --quiet

demo: setup
	$(BIN)/dressvision --home .dressvision/demo demo

test: setup synth
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .dressvision cdk.out .pytest_cache .ruff_cache node_modules build/lambda-layer
