# Mercato's entry point for developers and CI (.ci/run calls these same targets).
# `make` alone lists them. Cargo honours CARGO_TARGET_DIR from the environment.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

CARGO ?= cargo

# The buf CLI comes from npm, pinned, into a git-ignored folder of the repository: no system protoc
# or buf is needed, and everyone lints with the same version.
BUF_VERSION := 1.75.0
TOOLS_DIR := .cache/tools
BUF := $(TOOLS_DIR)/node_modules/.bin/buf
# localstripe (a stateful fake Stripe server) from PyPI, pinned, into a virtualenv beside it; the
# Stripe adapter's tests (crates/stripe) start it on a free loopback port.
LOCALSTRIPE_VERSION := 1.15.10
LOCALSTRIPE_VENV := $(TOOLS_DIR)/localstripe
# aiosmtpd (an asyncio SMTP server) from PyPI, pinned, into its own virtualenv; the process
# service's SMTP notifier tests (services/process) start it on a free loopback port.
AIOSMTPD_VERSION := 1.4.6
AIOSMTPD_VENV := $(TOOLS_DIR)/aiosmtpd

# Where deployments/deps.sh finds or starts the servers; tests get matching URLs unless the caller
# already set MERCATO_TEST_* itself.
MERCATO_PG_HOST ?= 127.0.0.1
MERCATO_PG_PORT ?= 5432
MERCATO_REDIS_HOST ?= 127.0.0.1
MERCATO_REDIS_PORT ?= 6379
MERCATO_AMQP_HOST ?= 127.0.0.1
MERCATO_AMQP_PORT ?= 5672
export MERCATO_PG_HOST MERCATO_PG_PORT MERCATO_REDIS_HOST MERCATO_REDIS_PORT MERCATO_AMQP_HOST MERCATO_AMQP_PORT
export MERCATO_TEST_DATABASE_URL ?= postgres://mercato:mercato@$(MERCATO_PG_HOST):$(MERCATO_PG_PORT)/postgres
export MERCATO_TEST_AMQP_URL ?= amqp://guest:guest@$(MERCATO_AMQP_HOST):$(MERCATO_AMQP_PORT)/%2f
export MERCATO_TEST_REDIS_URL ?= redis://$(MERCATO_REDIS_HOST):$(MERCATO_REDIS_PORT)
# serial_* tests bounce the broker through deps.sh, which knows whether it is a compose service or
# a local daemon.
export MERCATO_TEST_BROKER_RESTART_CMD ?= bash $(CURDIR)/deployments/deps.sh restart rabbitmq

# Runs a command as root: directly when we are root, through sudo otherwise.
AS_ROOT := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: help deps dev dev-stop web browser test bench lint fmt proto clean-test-dbs compose-config k8s-validate buf-cli node-cli nextest-cli localstripe aiosmtpd

help: ## list the targets
	@printf 'usage: make <target>\n\n'
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z-]*:.*## / { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

deps: ## start PostgreSQL, Redis and RabbitMQ unless already running; create the role and databases
	@bash deployments/deps.sh up

dev: web ## deps, build, start every service and the storefront, print where each listens
	@bash deployments/dev.sh up

web: node-cli ## build the storefront SPA (bff/web/dist), which the BFF serves on its port
	@node -e 'const [a, b] = process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 19)) { console.error("the storefront needs Node >= 20.19 (Vite 8); this is " + process.version); process.exit(1) }'
	@cd bff/web && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run build

dev-stop: ## stop what `make dev` started (servers that were already running stay up)
	@bash deployments/dev.sh stop

test: deps nextest-cli node-cli web browser localstripe aiosmtpd ## deps, the storefront, chromium, localstripe and aiosmtpd, then the whole test suite; serial_* tests run alone, last
	$(CARGO) nextest run --workspace --profile ci
	$(CARGO) nextest run --workspace --profile serial --no-tests=pass

bench: ## release builds on free ports, driven by mercato-loadgen; reports in target/bench (SCENARIOS="edge catalog stock")
	@bash deployments/bench.sh $(SCENARIOS)

lint: buf-cli ## buf lint, rustfmt check, clippy with warnings denied
	$(BUF) lint
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format all Rust code
	$(CARGO) fmt --all

proto: buf-cli ## lint and compile the .proto files, then build the generated Rust crate
	$(BUF) lint
	$(BUF) build
	$(CARGO) build -p mercato-proto

clean-test-dbs: ## drop leftover test databases (mercato_test_*)
	@bash deployments/deps.sh clean-test-dbs

compose-config: ## validate docker-compose.yml (installs Debian's docker-compose when no compose is present; no engine needed)
	@if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then \
		echo '==> installing docker-compose with apt (only to validate the file)'; \
		$(AS_ROOT) apt-get update -qq; \
		$(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose; \
	fi
	@if docker compose version >/dev/null 2>&1; then \
		docker compose config -q && echo 'docker-compose.yml is valid (docker compose)'; \
	else \
		docker-compose config -q && echo 'docker-compose.yml is valid (docker-compose)'; \
	fi

k8s-validate: ## validate deployments/k8s against the Kubernetes schemas (kubernetes-validate from PyPI)
	@bash deployments/k8s/validate.sh

# Installs node and npm with apt when they are missing (buf comes from npm; the BFF's external
# identity-provider tests run a mock OIDC provider under node).
node-cli:
	@if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then \
		echo '==> installing node and npm with apt'; \
		$(AS_ROOT) apt-get update -qq; \
		$(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; \
	fi

# Debian's chromium for the storefront's browser test (bff/tests/browser.rs), with Noto CJK so
# Japanese product names and addresses render in its screenshots instead of empty boxes.
browser:
	@if [ ! -x /usr/bin/chromium ] || ! dpkg-query -W -f='$${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'ok installed'; then \
		echo '==> installing chromium and fonts-noto-cjk with apt'; \
		$(AS_ROOT) apt-get update -qq; \
		$(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk; \
	fi

# Installs the pinned buf CLI.
buf-cli: node-cli
	@if [ "$$($(BUF) --version 2>/dev/null)" != "$(BUF_VERSION)" ]; then \
		echo '==> installing buf $(BUF_VERSION) into $(TOOLS_DIR)'; \
		mkdir -p $(TOOLS_DIR); \
		npm install --prefix $(TOOLS_DIR) --no-audit --no-fund --loglevel=error @bufbuild/buf@$(BUF_VERSION); \
	fi

# Installs the pinned localstripe into its virtualenv (python3-venv with apt when venv is missing).
localstripe:
	@if [ "$$($(LOCALSTRIPE_VENV)/bin/python -m pip show localstripe 2>/dev/null | sed -n 's/^Version: //p')" != "$(LOCALSTRIPE_VERSION)" ]; then \
		echo '==> installing localstripe $(LOCALSTRIPE_VERSION) into $(LOCALSTRIPE_VENV)'; \
		if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then \
			$(AS_ROOT) apt-get update -qq; \
			$(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; \
		fi; \
		rm -rf $(LOCALSTRIPE_VENV); \
		python3 -m venv $(LOCALSTRIPE_VENV); \
		$(LOCALSTRIPE_VENV)/bin/python -m pip install -q --disable-pip-version-check localstripe==$(LOCALSTRIPE_VERSION); \
	fi

# Installs the pinned aiosmtpd into its virtualenv (python3-venv with apt when venv is missing).
aiosmtpd:
	@if [ "$$($(AIOSMTPD_VENV)/bin/python -m pip show aiosmtpd 2>/dev/null | sed -n 's/^Version: //p')" != "$(AIOSMTPD_VERSION)" ]; then \
		echo '==> installing aiosmtpd $(AIOSMTPD_VERSION) into $(AIOSMTPD_VENV)'; \
		if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then \
			$(AS_ROOT) apt-get update -qq; \
			$(AS_ROOT) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; \
		fi; \
		rm -rf $(AIOSMTPD_VENV); \
		python3 -m venv $(AIOSMTPD_VENV); \
		$(AIOSMTPD_VENV)/bin/python -m pip install -q --disable-pip-version-check aiosmtpd==$(AIOSMTPD_VERSION); \
	fi

nextest-cli:
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked
