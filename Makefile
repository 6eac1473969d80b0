# messaging-rr-lab — every target installs what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_NO_CONFIG := 1

.PHONY: help venv wheel sysdeps prepare lock demo test test-unit test-replay test-live lint format arch brokers brokers-down record replay ci cassettes client-cassettes bench clean

## List the targets (from their ## comments).
help:
	@awk '/^## /{doc = doc (doc ? " " : "") substr($$0, 4); next} /^[a-z][a-z-]*:/{if (doc) {split($$0, t, ":"); printf "  make %-17s %s\n", t[1], doc}; doc = ""; next} {doc = ""}' $(MAKEFILE_LIST)

$(BIN)/.synced: requirements.lock pyproject.toml Makefile
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@test -x $(BIN)/python || uv venv --quiet --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip sync --quiet --require-hashes --compile-bytecode requirements.lock
	VIRTUAL_ENV=$(VENV) uv pip install --quiet --no-deps --config-settings editable_mode=compat -e .
	@touch $@

## Build .venv from requirements.lock (uv, hashes checked; never downloads a Python).
## Bytecode is compiled here, the dependencies' at each sync (this Makefile changing is one) and
## ours whenever a source changed: with PYTHONDONTWRITEBYTECODE set (or a read-only tree) every
## `rrlab` start would compile ~200 modules again, 0.4 s of each replay's start-up.
venv: $(BIN)/.synced
	@$(BIN)/python -m compileall -q rrlab rr proxy replayer brokers worker >/dev/null

## Build the sdist and, from it in a temporary directory, the wheel into dist/ (only rrlab in
## it; no build/ left in the checkout): what `pip install` / `uv tool install` take.
wheel:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	uv build --out-dir dist/

## Debian packages the tests need (brokers, client tools); a no-op when present.
sysdeps:
	@tools/ensure-system-packages

## Fetch and build what the cassettes' commands need (the prepare steps they stored: the Java
## client's Kafka jars via Maven, its classes), here with the network: replays run the commands
## where none is reachable.
prepare: venv sysdeps
	tools/replay-cassettes --prepare-only

## Regenerate requirements.lock from pyproject.toml (runtime + test extras, hashes).
lock:
	uv pip compile pyproject.toml --extra test --generate-hashes --python $(PYTHON) --no-header --quiet -o requirements.lock

## ruff lint and format check; import layers (import-linter contracts in pyproject.toml).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## Architecture contracts (arch/manifest.json): schemas, cross-references, import contracts,
## canonical JSON, locks. After an intended change: .venv/bin/rrlab arch check --write-lock
arch: venv
	$(BIN)/rrlab arch check

## Format and fix with ruff.
format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Everything: lint, the CI replay job (make ci), the replay-only tier (no broker; two workers,
## each in a network namespace of its own: tools/replay-tier), unit tests (two workers: that tier
## binds no fixed port), live-broker tests (one at a time: tools/live-tier). What the cassettes'
## commands need is fetched first (make prepare).
test: venv sysdeps prepare
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/rrlab arch check
	tools/replay-cassettes --profile ci_replay
	tools/replay-tier
	$(BIN)/pytest -q -n 2 tests/unit
	tools/live-tier

## Unit tests only (no broker, no replay).
test-unit: venv
	$(BIN)/pytest -q -m "not live" --ignore=tests/replay

## Replay-only tier: committed cassettes served by `rrlab serve`, no broker may run. Its tests
## serve on the recorded ports: two workers, each in a network namespace of its own (one at a
## time where none can be made; RRLAB_REPLAY_WORKERS=N for N).
test-replay: venv sysdeps
	tools/replay-tier

## Live tier only: tests that start real brokers, one at a time (RRLAB_LIVE_WORKERS=N: N workers,
## each starting its own brokers in a network namespace of its own; see tools/live-tier).
test-live: venv sysdeps
	tools/live-tier

## Start local brokers without Docker: Kafka :9092 (Apache Kafka where java runs, else Tansu:
## --kafka-impl auto), RabbitMQ :5672, amqtt :1883.
brokers: venv sysdeps
	$(BIN)/rrlab brokers up kafka amqp mqtt

## Stop the brokers `make brokers` started.
brokers-down: venv
	$(BIN)/rrlab brokers down

## Record every committed cassette from real brokers (each broker started fresh, then stopped).
record: cassettes client-cassettes

## Replay every committed cassette offline with the command it stored (rrlab replay --all
## cassettes; rr_replay: no broker, no network). One table; out/replay/report.json, junit.xml.
replay: venv sysdeps prepare
	tools/replay-cassettes --profile rr_replay

## The CI job: rrlab replay --all cassettes, replay-only and strict (ci_replay); one table,
## out/replay/report.json (canonical JSON), out/replay/junit.xml, each cassette's report in
## out/replay/NAME/. What the commands need is fetched first, with the network (make prepare).
ci: venv sysdeps prepare
	tools/replay-cassettes --profile ci_replay

## Record the worker on Tansu, stop the broker, replay it offline, compare the aggregates.
demo: venv
	tools/demo

## Re-record the committed reference cassettes (cassettes/worker-*, one per scenario of
## tests/replay/scenarios.py) with `rrlab record`, each from a freshly started broker: Tansu,
## Apache Kafka (java + mvn), RabbitMQ, amqtt, Mosquitto. NAMES=... records only those.
cassettes: venv sysdeps
	tools/record-cassettes $(NAMES)

## Re-record the client cassettes (cassettes/client-*, one per scenario of
## tests/replay/client_scenarios.py: Apache Kafka's Java client, amqp-tools, mosquitto_pub/sub)
## the same way; needs java + javac. NAMES=... records only those.
client-cassettes: venv sysdeps
	tools/clients/record-cassettes $(NAMES)

## Benchmarks (bench/bench_*.py), each printing one table measured in one run.
bench: venv sysdeps
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit $$?; done

## Stop brokers, remove .rrlab/ and out/.
clean:
	-$(BIN)/rrlab brokers down 2>/dev/null
	rm -rf .rrlab out .pytest_cache
