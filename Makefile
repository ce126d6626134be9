# The two commands of the README. Each installs what is missing (installer/bootstrap.sh), then does its job.
.PHONY: demo test lint dist

demo:
	installer/bootstrap.sh
	installer/demo.sh

test:
	installer/run-tests.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports && .venv/bin/mypy

dist:
	installer/build-dist.sh
