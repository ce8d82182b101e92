# The two commands: `make up` runs the whole stack on loopback, `make test` runs every test tier.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export PATH := $(HOME)/.local/bin:$(PATH)
UV := uv

.PHONY: up test install lint bench faults unit integration e2e browser

install:
	@deploy/local/install.sh

up: install
	$(UV) run python -m portal_devstack.up

# The browser tier runs in its own pytest process: Playwright's sync API keeps an event loop running in
# the main thread, which asyncio tests after it cannot share.
test: install
	$(UV) run ruff check .
	$(UV) run pytest --ignore=tests/browser
	$(UV) run pytest tests/browser

unit: install
	$(UV) run pytest tests/unit

integration: install
	$(UV) run pytest tests/integration

e2e: install
	$(UV) run pytest tests/e2e

browser: install
	$(UV) run pytest tests/browser

lint: install
	$(UV) run ruff check .

bench: install
	PYTHONPATH=. $(UV) run python -m bench

faults: install
	PYTHONPATH=. $(UV) run python -m bench.faults
