# Stable targets; CI runs `make test` (see .ci/run).
.PHONY: run test install lint format bench

install:
	scripts/bootstrap.sh

run: install
	.venv/bin/hotline run

test:
	scripts/test.sh

lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: install
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .
