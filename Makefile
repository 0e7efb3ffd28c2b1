# botmemory: the few commands a developer needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,server,postgres,redis,langgraph]"
	touch $(STAMP)

# make run serves a copy of the example data folder, yours to change: playground/
run: $(STAMP)
	@test -d playground || (cp -rL examples/data playground && rm -f playground/memory.db*)
	$(BIN)/botmemory serve playground

test: $(STAMP)
	$(BIN)/pytest

check: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/turns.py
	$(BIN)/python bench/janitor.py
	$(BIN)/python bench/converse.py
	$(BIN)/python bench/peers.py
	$(BIN)/python bench/langgraph_store.py

# 64 HTTP clients for 60 s against botmemory serve on SQLite, PostgreSQL and Redis
# (BOTMEMORY_TEST_POSTGRES_URL, BOTMEMORY_TEST_REDIS_URL; default: this machine's servers)
soak: $(STAMP)
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
