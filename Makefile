# The README's commands. `make run` and `make test` set up everything they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.run-$(shell cat requirements.txt | cksum | cut -d' ' -f1)
TEST_STAMP := $(VENV)/.test-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: run test soak bench bench-retention bench-bigtable lint format browser-deps lock audit

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(TEST_STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/python manage.py runservice

test: $(TEST_STAMP) browser-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The full-strength soak (issue 18) at 100,000 jobs: producers enqueue while workers,
# promoter, beat and the private broker are killed (see docs/reliability.md). CI runs it
# at 20,000 (pytest --soak). SOAK_SIZE to change the size, SOAK_SEED to replay a run.
SOAK_SIZE ?= 100000
soak: $(TEST_STAMP)
	$(BIN)/python -m pytest tests/reliability/test_soak.py --soak-size $(SOAK_SIZE) -s \
		$(if $(SOAK_SEED),--soak-seed $(SOAK_SEED)) $(PYTEST_ARGS)

# Debian's chromium for the dashboard's browser test (tests/browser/). Installed when
# missing and running as root; otherwise that test is skipped with the reason printed.
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: the browser test will be skipped"; \
	else echo "chromium is not installed (apt-get install chromium): the browser test will be skipped"; fi

bench: $(TEST_STAMP)
	$(BIN)/python bench/suite.py $(BENCH_ARGS)

# Retention over 300,000 finished jobs (no broker; ~15 s, ~1 min with --baseline).
bench-retention: $(TEST_STAMP)
	$(BIN)/python bench/retention.py $(BENCH_ARGS)

# The job table at 10,000,000 rows on SQLite (+ PostgreSQL with BENCH_DATABASE_URL);
# ~1 h on the 2-core VM, ~10 GB of disk under var/ while it runs. Not in CI.
bench-bigtable: $(TEST_STAMP)
	$(BIN)/python bench/bigtable.py $(BENCH_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

format: $(TEST_STAMP)
	$(BIN)/ruff format .

# Re-pin requirements*.txt from requirements*.in with hashes (pins already there are kept;
# pip install then refuses any file whose hash differs). Needs the package index.
lock: $(TEST_STAMP)
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links --strip-extras -o requirements.txt requirements.in
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links --strip-extras -o requirements-dev.txt requirements-dev.in

# Known vulnerabilities in the pinned requirements (.ci/audit.py says when it cannot tell).
audit: $(TEST_STAMP)
	$(BIN)/python .ci/audit.py
