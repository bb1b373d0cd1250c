# Thin aliases for ./edgeferry.sh (which works even where make is not installed yet).
.PHONY: setup demo test lint
setup:
	./edgeferry.sh setup
demo:
	./edgeferry.sh demo
test:
	./edgeferry.sh test
lint:
	.venv/bin/ruff check . && .venv/bin/yamllint . && .venv/bin/ansible-lint --profile production
