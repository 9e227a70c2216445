# One verb per target. Every target first makes sure the machine has what it needs.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: bootstrap demo test lint bench

bootstrap:
	scripts/bootstrap

demo: bootstrap
	$(BIN)/rung demo

lint: bootstrap
	$(BIN)/ruff format --check src tests examples bench
	$(BIN)/ruff check src tests examples bench
	$(BIN)/mypy src tests/db/executor_typing.py

test: lint
	$(BIN)/pytest
	$(BIN)/python scripts/check-install

bench: bootstrap
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done
