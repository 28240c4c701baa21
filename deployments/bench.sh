#!/usr/bin/env bash
# Runs Mercato's benchmarks (`make bench`): release builds of the services on free loopback ports,
# on fresh databases, a Redis key prefix and a broker namespace of their own, driven by
# mercato-loadgen against baselines measured in the same run.
#
# usage: deployments/bench.sh [scenario...]    default: every scenario
#
# Scenarios (one stack serves them all, started once per run):
#   edge     a verified-token read through the BFF vs the same read directly on the user service,
#            and a bare tonic server (the machine's RPC ceiling)
#   catalog  a public product read through the BFF vs directly on the product service vs raw tonic
#   stock    reservations on one hot SKU vs pgbench running the same conditional UPDATE
#   checkout CreateOrder through the BFF vs pgbench replaying the order database's statements of
#            one checkout; then invariants from both databases (orders = OK answers, each with its
#            order.created, reserved units = ordered units)
#   saga     orders from CreateOrder to FINISHED per second through every service and the bus,
#            POINTS and SANDBOX, in an open loop at each offered rate, with per-step latencies;
#            then invariants from all four databases and the broker's dead-letter queues
#   flash-sale   10,000 buyers for 100 units of one SKU per round, at each arrival rate: exactly
#            100 orders, the rest a clean sold-out answer; the winners paid and followed to
#            FINISHED; the saga's invariants
#   coupon-rush  a first-come-first-served campaign of 100 coupons rushed by 2,000 shoppers
#            clicking twice: exactly 100 issued, one per shopper
#   login-storm  logins at each rate, one in ten a wrong guess at one account: every shopper
#            logs in, every guess is refused and then throttled
#   browse   the Online Boutique mix (home 10, product 10, cart view 3, add 2, checkout 1) at
#            each arrival rate, a latency row per action; orders and reservations checked
#   redis    redis-benchmark GET, SET and the BFF's rate-limit script: the cache's limit
#
# Always, around the scenarios: the resident memory of every service once the stack is ready and
# before any load (idle-rss) and again at the end (rss-after-load), then summary.{md,json}, the
# benchmark goals against this run's reports.
#
# The payment and process services are started only when a scenario needs the whole saga
# (FULL_STACK below); the checkout scenario's orders then get payments too (AWAITING_PAYMENT).
#
# The services' consumer queues live in the broker namespace `mercato-bench`, shared by every run
# (so runs do not pile up queues) and deleted before the services start (every run has fresh
# databases, so nothing queued by an earlier run means anything, and the dead-letter invariant
# sees only this run's dead letters); Redis keys are per run and deleted at the end.
#
# Results: $MERCATO_BENCH_OUT (default target/bench)/<scenario>.{json,md,svg}; service logs in
# $MERCATO_BENCH_OUT/logs. A scenario whose invariants broke fails the run. Environment (all
# optional): MERCATO_BENCH_DURATION (default 10s), MERCATO_BENCH_WARMUP (2s),
# MERCATO_BENCH_CONCURRENCY (32), MERCATO_BENCH_CONNECTIONS (4), MERCATO_BENCH_SAGA_RATES
# (10,20,30,40 orders/s), MERCATO_BENCH_SAGA_METHODS (points,sandbox), MERCATO_BENCH_SLA (30s),
# MERCATO_BENCH_FLASH_BUYERS (10000), MERCATO_BENCH_FLASH_UNITS (100), MERCATO_BENCH_FLASH_RATES
# (250,500 buyers/s), MERCATO_BENCH_COUPON_RATES (200,400,800 shoppers/s),
# MERCATO_BENCH_LOGIN_RATES (10,20,40,80 logins/s), MERCATO_BENCH_BROWSE_RATES (100,200,400,800
# actions/s),
# MERCATO_BENCH_SHIPMENT_DELAY (the process service's SHIPMENT_DELAY, 200ms),
# MERCATO_BENCH_RABBITMQCTL (how to run rabbitmqctl, default `rabbitmqctl`; e.g.
# `docker compose exec -T rabbitmq rabbitmqctl`), CARGO_TARGET_DIR. The databases
# mercato_bench_* are dropped and recreated on every run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONFIG_DIR="$ROOT/deployments/config"
CARGO=${CARGO:-cargo}
OUT=${MERCATO_BENCH_OUT:-$ROOT/target/bench}
LOGS="$OUT/logs"
PG_URL_BASE=${MERCATO_BENCH_PG:-postgres://mercato:mercato@127.0.0.1:5432}
RUN_ID="bench$$"
BUS_NAMESPACE=mercato-bench
SHIPMENT_DELAY=${MERCATO_BENCH_SHIPMENT_DELAY:-200ms}
read -r -a RABBITMQCTL <<<"${MERCATO_BENCH_RABBITMQCTL:-rabbitmqctl}"
# Scenarios that need the payment and process services.
FULL_STACK=(saga flash-sale browse)
PIDS=()
# name=pid of every service started, for the resident-memory reports.
SERVICES=()

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # This run's Redis keys (rate limits, caches, markers) go with it.
    if command -v redis-cli >/dev/null; then
        redis-cli --scan --pattern "$RUN_ID:*" | xargs -r -n 500 redis-cli del >/dev/null || true
    fi
}
trap cleanup EXIT

# A port free now, from below the kernel's ephemeral range: the services bind it a moment later,
# and a port the kernel hands out for port 0 (to a test or a client running meanwhile) could be
# taken by then.
free_port() {
    python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(1000):
    port = random.randrange(10000, max(low, 10001))
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit("no free port below the ephemeral range")
PY
}

# KEY=value lines of an env file, verbatim (as dev.sh and docker compose read them).
env_lines() { # env_lines <file>
    [ -f "$1" ] || return 0
    grep -E '^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*=' "$1" | sed 's/^[[:space:]]*//'
}

fresh_database() { # fresh_database <name>: prints its URL
    psql -X -q -v ON_ERROR_STOP=1 "$PG_URL_BASE/postgres" \
        -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
    printf '%s/%s' "$PG_URL_BASE" "$1"
}

# Starts a release binary with the local settings of <name>, then the overrides (later wins).
start() { # start <name> <binary> <KEY=value...>
    local name=$1 bin=$2 envs
    shift 2
    mapfile -t envs < <(env_lines "$CONFIG_DIR/common.env"; env_lines "$CONFIG_DIR/$name.env")
    env "${envs[@]}" MERCATO__LOG_FORMAT=json MERCATO__LOG_FILTER=warn "$@" \
        "$TARGET/release/$bin" >"$LOGS/$name.log" 2>&1 </dev/null &
    PIDS+=("$!")
    SERVICES+=("$name=$!")
}

wait_ready() { # wait_ready <name> <http addr>
    local deadline=$((SECONDS + 60))
    until curl -fsS -o /dev/null "http://$2/readyz" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "$1 not ready after 60 s (see $LOGS/$1.log)"
        sleep 0.3
    done
}

# Deletes every queue of the bench namespace (the services declare theirs again on start).
reset_bus() {
    local queues
    if ! queues=$("${RABBITMQCTL[@]}" -q list_queues --no-table-headers name 2>/dev/null); then
        [ "$NEED_FULL_STACK" = 1 ] &&
            die "cannot list queues with '${RABBITMQCTL[*]}' (set MERCATO_BENCH_RABBITMQCTL)"
        printf 'warning: cannot list queues with %s; queues of earlier runs stay\n' \
            "${RABBITMQCTL[*]}" >&2
        return 0
    fi
    local queue
    for queue in $(grep "^$BUS_NAMESPACE\." <<<"$queues" || true); do
        "${RABBITMQCTL[@]}" -q delete_queue "$queue" >/dev/null
    done
}

loadgen_flags() {
    printf '%s\n' --duration "${MERCATO_BENCH_DURATION:-10s}" --warmup "${MERCATO_BENCH_WARMUP:-2s}" \
        --concurrency "${MERCATO_BENCH_CONCURRENCY:-32}" \
        --connections "${MERCATO_BENCH_CONNECTIONS:-4}" --out "$OUT"
}

# ---------------------------------------------------------------- scenarios

# Starts the user, product and order services (with NEED_FULL_STACK=1 also the payment and
# process services), the BFF in front of them and a bare tonic server, each on free ports and
# fresh databases; sets USER_GRPC, PRODUCT_GRPC, ORDER_GRPC, PRODUCT_DB, ORDER_DB, PAYMENT_DB,
# PROCESS_DB, BFF_GRPC, HELLO.
start_stack() {
    local user_http product_http order_http bff_http user_db hello_port
    local payment_grpc payment_http process_grpc process_http
    USER_GRPC=127.0.0.1:$(free_port)
    user_http=127.0.0.1:$(free_port)
    PRODUCT_GRPC=127.0.0.1:$(free_port)
    product_http=127.0.0.1:$(free_port)
    BFF_GRPC=127.0.0.1:$(free_port)
    bff_http=127.0.0.1:$(free_port)
    hello_port=$(free_port)
    user_db=$(fresh_database mercato_bench_user)
    PRODUCT_DB=$(fresh_database mercato_bench_product)
    ORDER_DB=$(fresh_database mercato_bench_order)
    ORDER_GRPC=127.0.0.1:$(free_port)
    order_http=127.0.0.1:$(free_port)
    payment_grpc=127.0.0.1:$(free_port)
    payment_http=127.0.0.1:$(free_port)
    process_grpc=127.0.0.1:$(free_port)
    process_http=127.0.0.1:$(free_port)

    reset_bus
    if [ "$NEED_FULL_STACK" = 1 ]; then
        PAYMENT_DB=$(fresh_database mercato_bench_payment)
        PROCESS_DB=$(fresh_database mercato_bench_process)
        say "starting the user, product, order, payment and process services, the BFF and a bare tonic server"
    else
        say "starting the user, product and order services, the BFF and a bare tonic server"
    fi
    start user mercato-user MERCATO_USER__GRPC_ADDR="$USER_GRPC" MERCATO_USER__HTTP_ADDR="$user_http" \
        MERCATO_USER__DATABASE_URL="$user_db" MERCATO_USER__ISSUER="http://$user_http" \
        MERCATO_USER__REDIS_KEY_PREFIX="$RUN_ID:user:" MERCATO__BUS_NAMESPACE=mercato-bench
    start product mercato-product MERCATO_PRODUCT__GRPC_ADDR="$PRODUCT_GRPC" \
        MERCATO_PRODUCT__HTTP_ADDR="$product_http" MERCATO_PRODUCT__DATABASE_URL="$PRODUCT_DB" \
        MERCATO_PRODUCT__REDIS_KEY_PREFIX="$RUN_ID:product:" MERCATO__BUS_NAMESPACE=mercato-bench
    wait_ready user "$user_http"
    wait_ready product "$product_http"
    start order mercato-order MERCATO_ORDER__GRPC_ADDR="$ORDER_GRPC" \
        MERCATO_ORDER__HTTP_ADDR="$order_http" MERCATO_ORDER__DATABASE_URL="$ORDER_DB" \
        MERCATO_ORDER__PRODUCT_SERVICE_URL="http://$PRODUCT_GRPC" \
        MERCATO_ORDER__REDIS_KEY_PREFIX="$RUN_ID:order:" MERCATO__BUS_NAMESPACE=mercato-bench
    wait_ready order "$order_http"
    if [ "$NEED_FULL_STACK" = 1 ]; then
        start payment mercato-payment MERCATO_PAYMENT__GRPC_ADDR="$payment_grpc" \
            MERCATO_PAYMENT__HTTP_ADDR="$payment_http" MERCATO_PAYMENT__DATABASE_URL="$PAYMENT_DB" \
            MERCATO_PAYMENT__ORDER_SERVICE_URL="http://$ORDER_GRPC" \
            MERCATO_PAYMENT__PUBLIC_URL="http://$payment_http" MERCATO__BUS_NAMESPACE=$BUS_NAMESPACE
        # The simulated carrier ships SHIPMENT_DELAY after the stock is committed and delivers
        # SHIPMENT_DELAY later: short, so a saga takes well under a second plus the two delays.
        start process mercato-process MERCATO_PROCESS__GRPC_ADDR="$process_grpc" \
            MERCATO_PROCESS__HTTP_ADDR="$process_http" MERCATO_PROCESS__DATABASE_URL="$PROCESS_DB" \
            MERCATO_PROCESS__ORDER_SERVICE_URL="http://$ORDER_GRPC" \
            MERCATO_PROCESS__PRODUCT_SERVICE_URL="http://$PRODUCT_GRPC" \
            MERCATO_PROCESS__USER_SERVICE_URL="http://$USER_GRPC" \
            MERCATO_PROCESS__SHIPMENT_DELAY="$SHIPMENT_DELAY" MERCATO__BUS_NAMESPACE=$BUS_NAMESPACE
        wait_ready payment "$payment_http"
        wait_ready process "$process_http"
    fi
    # The limits are lifted so the benchmark measures the limiter's cost, not its refusals.
    start bff mercato-bff MERCATO_BFF__GRPC_ADDR="$BFF_GRPC" MERCATO_BFF__HTTP_ADDR="$bff_http" \
        MERCATO_BFF__USER_SERVICE_URL="http://$USER_GRPC" \
        MERCATO_BFF__PRODUCT_SERVICE_URL="http://$PRODUCT_GRPC" \
        MERCATO_BFF__ORDER_SERVICE_URL="http://$ORDER_GRPC" \
        MERCATO_BFF__PAYMENT_SERVICE_URL="http://$payment_grpc" \
        MERCATO_BFF__PROCESS_SERVICE_URL="http://$process_grpc" \
        MERCATO_BFF__ISSUER="http://$user_http" \
        MERCATO_BFF__JWKS_URL="http://$user_http/.well-known/jwks.json" \
        MERCATO_BFF__REDIS_KEY_PREFIX="$RUN_ID:bff:" \
        MERCATO_BFF__RATE_LIMIT_READ_REQUESTS=100000000 MERCATO_BFF__RATE_LIMIT_READ_BURST=100000000 \
        MERCATO_BFF__RATE_LIMIT_AUTH_REQUESTS=100000000 MERCATO_BFF__RATE_LIMIT_AUTH_BURST=100000000 \
        MERCATO_BFF__RATE_LIMIT_WRITE_REQUESTS=100000000 MERCATO_BFF__RATE_LIMIT_WRITE_BURST=100000000
    wait_ready bff "$bff_http"
    "$TARGET/release/mercato-loadgen" hello-server --addr "127.0.0.1:$hello_port" \
        >"$LOGS/hello.log" 2>&1 &
    PIDS+=("$!")
    HELLO=127.0.0.1:$hello_port
    local deadline=$((SECONDS + 30))
    until grep -q 'listening on' "$LOGS/hello.log" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "the hello server did not start (see $LOGS/hello.log)"
        sleep 0.1
    done
}

loadgen() { "$TARGET/release/mercato-loadgen" "$@" "${FLAGS[@]}"; }

bench_edge() {
    loadgen edge --bff "http://$BFF_GRPC" --user "http://$USER_GRPC" --hello "http://$HELLO"
}

bench_catalog() {
    loadgen catalog --bff "http://$BFF_GRPC" --product "http://$PRODUCT_GRPC" --hello "http://$HELLO"
}

bench_stock() {
    loadgen stock --product "http://$PRODUCT_GRPC" --database-url "$PRODUCT_DB"
}

bench_checkout() {
    loadgen checkout --bff "http://$BFF_GRPC" --product "http://$PRODUCT_GRPC" \
        --order-database-url "$ORDER_DB" --product-database-url "$PRODUCT_DB"
}

# The database and broker flags of the journey scenarios.
journey_flags() {
    printf '%s\n' --order-database-url "$ORDER_DB" --product-database-url "$PRODUCT_DB" \
        --payment-database-url "$PAYMENT_DB" --process-database-url "$PROCESS_DB" \
        --bus-namespace "$BUS_NAMESPACE" --rabbitmqctl "${RABBITMQCTL[*]}"
}

bench_flash-sale() {
    local journey
    mapfile -t journey < <(journey_flags)
    loadgen flash-sale --bff "http://$BFF_GRPC" --product "http://$PRODUCT_GRPC" "${journey[@]}" \
        --buyers "${MERCATO_BENCH_FLASH_BUYERS:-10000}" --units "${MERCATO_BENCH_FLASH_UNITS:-100}" \
        --rates "${MERCATO_BENCH_FLASH_RATES:-250,500}" --sla "${MERCATO_BENCH_SLA:-30s}"
}

bench_coupon-rush() {
    loadgen coupon-rush --bff "http://$BFF_GRPC" --order "http://$ORDER_GRPC" \
        --order-database-url "$ORDER_DB" --rates "${MERCATO_BENCH_COUPON_RATES:-200,400,800}"
}

bench_login-storm() {
    loadgen login-storm --bff "http://$BFF_GRPC" \
        --rates "${MERCATO_BENCH_LOGIN_RATES:-10,20,40,80}"
}

bench_browse() {
    loadgen browse --bff "http://$BFF_GRPC" --product "http://$PRODUCT_GRPC" \
        --order-database-url "$ORDER_DB" --product-database-url "$PRODUCT_DB" \
        --rates "${MERCATO_BENCH_BROWSE_RATES:-100,200,400,800}"
}

bench_redis() {
    loadgen redis --url "${MERCATO_BENCH_REDIS:-redis://127.0.0.1:6379}" --key-prefix "$RUN_ID:redis:"
}

# Resident memory of every service started, as the report <scenario>.
measure_rss() { # measure_rss <scenario>
    local processes=() service
    for service in "${SERVICES[@]}"; do processes+=(--process "$service"); done
    "$TARGET/release/mercato-loadgen" rss --scenario "$1" "${processes[@]}" --out "$OUT"
}

bench_saga() {
    local journey
    mapfile -t journey < <(journey_flags)
    loadgen saga --bff "http://$BFF_GRPC" --product "http://$PRODUCT_GRPC" "${journey[@]}" \
        --rates "${MERCATO_BENCH_SAGA_RATES:-10,20,30,40}" \
        --methods "${MERCATO_BENCH_SAGA_METHODS:-points,sandbox}" \
        --sla "${MERCATO_BENCH_SLA:-30s}" --shipment-delay "$SHIPMENT_DELAY"
}

# ---------------------------------------------------------------- main

KNOWN=(redis edge catalog stock checkout saga flash-sale coupon-rush login-storm browse)
SCENARIOS=("${KNOWN[@]}")
[ "$#" -gt 0 ] && SCENARIOS=("$@")
NEED_FULL_STACK=0
for scenario in "${SCENARIOS[@]}"; do
    declare -F "bench_$scenario" >/dev/null ||
        die "unknown scenario '$scenario' (known: ${KNOWN[*]})"
    for full in "${FULL_STACK[@]}"; do
        if [ "$scenario" = "$full" ]; then NEED_FULL_STACK=1; fi
    done
done

bash "$ROOT/deployments/deps.sh" up
mkdir -p "$LOGS"
say "building release binaries"
(cd "$ROOT" && "$CARGO" build --release -p mercato-user -p mercato-product -p mercato-order \
    -p mercato-payment -p mercato-process -p mercato-bff -p mercato-loadgen)
TARGET=$("$CARGO" metadata --no-deps --format-version 1 --manifest-path "$ROOT/Cargo.toml" |
    grep -o '"target_directory":"[^"]*"' | sed 's/^"target_directory":"//; s/"$//')

mapfile -t FLAGS < <(loadgen_flags)
start_stack
# Idle: ready, connected to their servers, nothing asked of them yet.
sleep 2
measure_rss idle-rss
FAILED=()
for scenario in "${SCENARIOS[@]}"; do
    say "scenario $scenario"
    # A scenario that fails (a broken invariant, an error) is reported at the end; the others
    # still run, and the run fails.
    "bench_$scenario" || FAILED+=("$scenario")
done
measure_rss rss-after-load
"$TARGET/release/mercato-loadgen" summary --out "$OUT"
say "reports in ${OUT#"$ROOT"/}"
[ "${#FAILED[@]}" -eq 0 ] || die "scenarios that failed: ${FAILED[*]}"
