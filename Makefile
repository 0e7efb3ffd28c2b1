# botmemory: the few commands a developer needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVE_STAMP := $(VENV)/.installed-serve

.PHONY: run test check bench bench-quick soak clean

# Installs go through uv when it can be installed (several times faster), else plain pip.
INSTALL = sh -c 'if [ -x $(BIN)/uv ]; then exec $(BIN)/uv pip install --quiet --python $(BIN)/python "$$@"; \
	else exec $(BIN)/pip install --quiet "$$@"; fi' install

# A virtualenv without pip (ten times faster to create) gets uv through the system's pip;
# where that fails, it gets pip instead.
$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install --quiet --disable-pip-version-check uv \
		|| (echo "uv is not installable: using pip" && $(BIN)/python -m ensurepip --default-pip)

# make run installs what serving needs only; make test adds the tools and drivers.
$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(INSTALL) -e ".[server]"
	touch $@

$(STAMP): pyproject.toml $(SERVE_STAMP)
	$(INSTALL) -e ".[dev,server,postgres,redis,langgraph]"
	touch $@

# make run serves a copy of the example data folder, yours to change: playground/
# It reloads a bot when its files change; RELOAD= turns that off.
RELOAD ?= --reload
run: $(SERVE_STAMP)
	@test -d playground || (cp -rL examples/data playground && rm -f playground/memory.db*)
	$(BIN)/botmemory serve playground $(RELOAD)

# make test runs the tests in TEST_WORKERS processes (pytest-xdist); TEST_WORKERS=0: in one.
# The default distribution, by test: loadgroup and loadscope would run schemathesis's cases,
# which share one test id, only once.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS)

check: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench
	$(BIN)/mypy

# every benchmark, saved to bench/results/<date>.json; bench-quick: small sizes, about a minute
bench: $(STAMP)
	$(INSTALL) -e ".[bench]"
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(INSTALL) -e ".[bench]"
	$(BIN)/python bench/run.py --quick

# 64 HTTP clients for 60 s against botmemory serve on SQLite, PostgreSQL and Redis
# (BOTMEMORY_TEST_POSTGRES_URL, BOTMEMORY_TEST_REDIS_URL; default: this machine's servers)
soak: $(STAMP)
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
