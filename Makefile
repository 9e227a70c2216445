# One verb per target. Every target first makes sure the machine has what it needs.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: bootstrap demo test lint docs bench

bootstrap:
	scripts/bootstrap

demo: bootstrap
	$(BIN)/rung demo

lint: bootstrap
	$(BIN)/ruff format --check src tests examples bench scripts
	$(BIN)/ruff check src tests examples bench scripts
	$(BIN)/mypy src tests/db/executor_typing.py scripts/mkdocs_hooks.py

# The site of docs/*.md (mkdocs.yml) into site/; open site/index.html. A warning fails it.
# NO_MKDOCS_2_WARNING: Material for MkDocs prints on each run that it reaches end of life on
# 2027-05-05 (fixes until then; Zensical, by the same team, reads the same mkdocs.yml).
docs: bootstrap
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint docs
	$(BIN)/pytest
	$(BIN)/python scripts/check-install

bench: bootstrap
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done
