# sipguard developer commands. `make run` and `make test` work on a fresh clone: both create .venv first.
PY     ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
POLICY ?= policies/default.yaml

.PHONY: install run demo test test-fast lint fmt type imports check bench check-policy clean

install: $(STAMP)            ## editable install with the dev tools into .venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)                ## run sipguard in the foreground on the embedded default policy
	$(BIN)/sipguard run -c $(POLICY)

demo: $(STAMP)               ## try it without a PBX: toy PBX, sipguard, phones and attackers, all on loopback
	$(BIN)/sipguard demo

test: $(STAMP)               ## the whole suite (peer tests skip unless sipp/kamailio exist, fail with SIPGUARD_REQUIRE_PEERS=1)
	$(BIN)/python -m pytest

test-fast: $(STAMP)          ## pure layers only: no sockets, no event loop
	$(BIN)/python -m pytest -m "not integration and not peers" -x -q

lint: $(STAMP)               ## never rewrites; CI-safe
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m ruff check .

fmt: $(STAMP)
	$(BIN)/python -m ruff format .
	$(BIN)/python -m ruff check --fix .

type: $(STAMP)
	$(BIN)/python -m mypy sipguard tests bench

imports: $(STAMP)            ## core <- policy <- engine <- io|store <- services <- app <- cli
	$(BIN)/lint-imports

check-policy: $(STAMP)
	for f in policies/*.yaml policies/examples/*.yaml; do [ -f "$$f" ] && $(BIN)/sipguard check -c "$$f" || exit 1; done

check: lint type imports test check-policy

bench: $(STAMP)              ## benchmarks print numbers; see bench/README.md and bench/RESULTS.md
	$(BIN)/python -m bench

clean:
	rm -rf .mypy_cache .pytest_cache .ruff_cache .hypothesis dist build
