# The project's one command surface; the README and CI use these targets.
VENV ?= .venv
export VENV

.PHONY: install run test test-fast lint bench bench-quick clean

install:
	@scripts/install.sh

run: install
	$(VENV)/bin/assistantd serve

test: install
	$(VENV)/bin/pytest

# The unit tier and the api tier on SQLite: needs neither PostgreSQL nor Redis.
test-fast: install
	$(VENV)/bin/pytest --sqlite-only tests/unit tests/api

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: install
	$(VENV)/bin/python -m bench.run_all

bench-quick: install
	$(VENV)/bin/python -m bench.run_all --quick

# The sandbox (ASSISTANTD_SANDBOX_DIR, default /opt/assistantd/sandbox) lives outside the
# checkout and may serve other checkouts, so it stays; .venv-sandbox is where it used to be.
clean:
	rm -rf $(VENV) .venv-sandbox data
	@echo "make clean: kept the code_interpreter sandbox (ASSISTANTD_SANDBOX_DIR, default /opt/assistantd/sandbox); rm -rf it to remove it"
