# messaging-rr-lab — every target installs what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_NO_CONFIG := 1

.PHONY: venv sysdeps lock demo test test-unit test-replay test-live lint format brokers brokers-down cassettes client-cassettes bench clean

$(BIN)/.synced: requirements.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	@test -x $(BIN)/python || uv venv --quiet --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip sync --quiet --require-hashes requirements.lock
	VIRTUAL_ENV=$(VENV) uv pip install --quiet --no-deps --config-settings editable_mode=compat -e .
	@touch $@

venv: $(BIN)/.synced

## Debian packages the live tiers need (RabbitMQ, Mosquitto, socat); a no-op when present.
sysdeps:
	@tools/ensure-system-packages

## Regenerate requirements.lock from pyproject.toml (runtime + test extras, hashes).
lock:
	uv pip compile pyproject.toml --extra test --generate-hashes --python $(PYTHON) --no-header --quiet -o requirements.lock

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: venv sysdeps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

test-unit: venv
	$(BIN)/pytest -q -m "not live" --ignore=tests/replay

## Replay-only tier: committed cassettes served by `rrlab serve`, no broker may run.
test-replay: venv sysdeps
	$(BIN)/pytest -q tests/replay

test-live: venv sysdeps
	$(BIN)/pytest -q -m live

brokers: venv sysdeps
	$(BIN)/rrlab brokers up kafka amqp mqtt

brokers-down: venv
	$(BIN)/rrlab brokers down

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

bench: venv sysdeps
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit $$?; done

clean:
	-$(BIN)/rrlab brokers down 2>/dev/null
	rm -rf .rrlab out .pytest_cache
