#!/usr/bin/env bash
# Brings up the servers Mercato needs (PostgreSQL, Redis, RabbitMQ) for `make dev`, `make test` and CI.
#
# usage: deployments/deps.sh [up]               reuse, or start, all three; create role and databases
#        deployments/deps.sh status             show what answers, start nothing
#        deployments/deps.sh stop               stop only what this script started
#        deployments/deps.sh restart rabbitmq   bounce the broker (serial tests use it)
#        deployments/deps.sh clean-test-dbs     drop leftover databases named mercato_test_*
#
# For each server: if something already answers on its loopback port, it is reused. Otherwise the
# missing ones are started with docker compose when a Docker engine is usable, or else installed from
# Debian's packages with apt and started as plain daemons (no systemd needed, so it also works in a
# bare container or CI machine). Everything this script starts is written to deployments/.run/ so
# that `stop` never touches a server someone else runs.
#
# Environment (all optional):
#   MERCATO_PG_HOST / MERCATO_PG_PORT          default 127.0.0.1 / 5432
#   MERCATO_REDIS_HOST / MERCATO_REDIS_PORT    default 127.0.0.1 / 6379
#   MERCATO_AMQP_HOST / MERCATO_AMQP_PORT      default 127.0.0.1 / 5672
#   MERCATO_DEPS_MODE                          auto (default), compose or local
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_DIR="$ROOT/deployments/.run"
STATE_FILE="$RUN_DIR/deps.state"
COMPOSE_FILE="$ROOT/docker-compose.yml"

PG_HOST=${MERCATO_PG_HOST:-127.0.0.1}
PG_PORT=${MERCATO_PG_PORT:-5432}
REDIS_HOST=${MERCATO_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${MERCATO_REDIS_PORT:-6379}
AMQP_HOST=${MERCATO_AMQP_HOST:-127.0.0.1}
AMQP_PORT=${MERCATO_AMQP_PORT:-5672}
MODE=${MERCATO_DEPS_MODE:-auto}

# A local development and test role. Superuser because tests create and drop databases and
# templates, and services may need extensions; the password makes one URL work under both trust
# and scram authentication.
DB_USER=mercato
DB_PASSWORD=mercato
SERVICE_DATABASES=(mercato_user mercato_product mercato_order mercato_payment mercato_process)

DEPS=(postgres redis rabbitmq)
declare -A TITLE=([postgres]=PostgreSQL [redis]=Redis [rabbitmq]=RabbitMQ)
declare -A HOST=([postgres]=$PG_HOST [redis]=$REDIS_HOST [rabbitmq]=$AMQP_HOST)
declare -A PORT=([postgres]=$PG_PORT [redis]=$REDIS_PORT [rabbitmq]=$AMQP_PORT)
declare -A TIMEOUT=([postgres]=60 [redis]=30 [rabbitmq]=90)
declare -A STATUS=() VERSION=() LOG_HINT=()

COMPOSE=()
APT_UPDATED=0
POLICY_GUARD=0

# ---------------------------------------------------------------- output helpers

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif have sudo; then
        sudo "$@"
    else
        die "'$*' needs root and sudo is not installed; run this script as root"
    fi
}

is_loopback() {
    case "$1" in
        127.* | localhost | ::1) return 0 ;;
        *) return 1 ;;
    esac
}

addr() { printf '%s:%s' "${HOST[$1]}" "${PORT[$1]}"; }

# ---------------------------------------------------------------- state of what we started

record() { # record <dep> <method> <detail...>
    mkdir -p "$RUN_DIR"
    forget "$1"
    printf '%s|%s|%s\n' "$1@${PORT[$1]}" "$2" "${*:3}" >>"$STATE_FILE"
}

forget() {
    [ -f "$STATE_FILE" ] || return 0
    local rest
    rest=$(grep -v "^$1@${PORT[$1]}|" "$STATE_FILE" || true)
    if [ -n "$rest" ]; then printf '%s\n' "$rest" >"$STATE_FILE"; else rm -f "$STATE_FILE"; fi
}

recorded() { # prints "method|detail" for a dependency this script started, if any
    [ -f "$STATE_FILE" ] || return 1
    local line
    line=$(grep "^$1@${PORT[$1]}|" "$STATE_FILE" | tail -n 1) || return 1
    printf '%s\n' "${line#*|}"
}

# Serialises concurrent runs (e.g. two `make test` at once) so they do not both start a server.
lock() {
    mkdir -p "$RUN_DIR"
    have flock || return 0
    exec 9>"$RUN_DIR/deps.lock"
    flock -w 600 9 || die "another deps.sh run holds $RUN_DIR/deps.lock"
}

# Runs a command that may leave a daemon behind. The daemon must not inherit the lock descriptor,
# or it would hold the lock for as long as it runs and block every later run.
spawn() { "$@" 9>&-; }

# ---------------------------------------------------------------- protocol probes (bash only)

# shellcheck disable=SC2016 # the inner bash expands its own arguments
tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

# Sends inline commands followed by QUIT, so the server closes the connection and `cat` returns.
redis_query() {
    # shellcheck disable=SC2016 # the inner bash expands its own arguments
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "%s\r\nQUIT\r\n" "$3" >&3 && cat <&3' \
        _ "$REDIS_HOST" "$REDIS_PORT" "$1" 2>/dev/null | tr -d '\r'
}

redis_ready() { redis_query PING | grep -qx '+PONG'; }

redis_version() { redis_query 'INFO server' | sed -n 's/^redis_version://p'; }

# Sends the AMQP 0-9-1 protocol header and prints the broker's Connection.Start frame with
# non-printable bytes as '|'. A broker that answers with it is ready to accept connections.
amqp_start_frame() {
    # shellcheck disable=SC2016 # the inner bash expands its own arguments
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "AMQP\x00\x00\x09\x01" >&3
        read -r -a h < <(head -c 7 <&3 | od -An -tu1 -v)
        [ "${#h[@]}" -eq 7 ] && [ "${h[0]}" -eq 1 ] || exit 1
        size=$(( (h[3] << 24) | (h[4] << 16) | (h[5] << 8) | h[6] ))
        head -c "$size" <&3 | LC_ALL=C tr -c "[:print:]" "|"
    ' _ "$AMQP_HOST" "$AMQP_PORT" 2>/dev/null
}

rabbitmq_ready() { amqp_start_frame | grep -q 'productS||||RabbitMQ'; }

rabbitmq_version() {
    amqp_start_frame | sed -n 's/.*versionS||||\([0-9][0-9.]*[0-9]\).*/\1/p'
}

# ---------------------------------------------------------------- PostgreSQL clients

compose_has_running() { # compose_has_running <service>
    [ "${#COMPOSE[@]}" -gt 0 ] || return 1
    [ -n "$("${COMPOSE[@]}" ps -q "$1" 2>/dev/null)" ]
}

# Runs psql as the mercato role: over TCP when a client is installed, inside the compose container
# otherwise (a Docker machine need not have the PostgreSQL client).
mercato_psql() {
    if have psql; then
        PGPASSWORD=$DB_PASSWORD PGCONNECT_TIMEOUT=5 psql -X -q -At -v ON_ERROR_STOP=1 \
            -h "$PG_HOST" -p "$PG_PORT" -U "$DB_USER" -d postgres "$@"
    else
        "${COMPOSE[@]}" exec -T postgres psql -X -q -At -v ON_ERROR_STOP=1 -U "$DB_USER" -d postgres "$@"
    fi
}

postgres_ready() {
    if have pg_isready; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
    elif compose_has_running postgres; then
        "${COMPOSE[@]}" exec -T postgres pg_isready -q -U "$DB_USER" -d postgres
    else
        return 1
    fi
}

postgres_version() { mercato_psql -c 'show server_version' 2>/dev/null | awk '{print $1}'; }

ensure_postgres_client() {
    have psql && return 0
    compose_has_running postgres && return 0
    have apt-get || die "psql is not installed; install the PostgreSQL client and rerun"
    say "installing the PostgreSQL client (psql, pg_isready)"
    apt_install postgresql-client
}

# ---------------------------------------------------------------- docker compose

detect_compose() {
    have docker || return 0
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose --project-directory "$ROOT" -f "$COMPOSE_FILE")
    elif have docker-compose; then
        COMPOSE=(docker-compose --project-directory "$ROOT" -f "$COMPOSE_FILE")
    fi
}

docker_usable() {
    [ "${#COMPOSE[@]}" -gt 0 ] && timeout 20 docker info >/dev/null 2>&1
}

# The compose file publishes each server on 127.0.0.1 and the port configured above.
compose_env() {
    env MERCATO_PG_PORT="$PG_PORT" MERCATO_REDIS_PORT="$REDIS_PORT" MERCATO_AMQP_PORT="$AMQP_PORT" "$@"
}

start_with_compose() { # start_with_compose <dep...>
    local wait=()
    [ "${COMPOSE[0]}" = docker ] && wait=(--wait)
    say "starting with docker compose: $*"
    if ! spawn compose_env "${COMPOSE[@]}" up -d "${wait[@]}" "$@"; then
        die "docker compose could not start $*; see: ${COMPOSE[*]:0:2} logs $*"
    fi
    local dep
    for dep in "$@"; do
        STATUS[$dep]="started (compose)"
        LOG_HINT[$dep]="run '${COMPOSE[*]:0:2} logs $dep'"
        record "$dep" compose "$dep"
    done
}

# ---------------------------------------------------------------- Debian packages and local daemons

remove_policy_guard() {
    if [ "$POLICY_GUARD" -eq 1 ]; then
        as_root rm -f /usr/sbin/policy-rc.d
        POLICY_GUARD=0
    fi
}
trap remove_policy_guard EXIT

apt_install() { # apt_install <package...>
    have apt-get || die "cannot install $* without apt-get; install it yourself or start a Docker engine"
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    # Package scripts try to start each daemon through the init system. Without one (a container,
    # a CI machine) that fails and leaves the package half-configured; this script starts the daemons
    # itself, so tell the scripts not to (exit 101 = action forbidden), unless a policy already exists.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        POLICY_GUARD=1
    fi
    say "apt-get install $*"
    if ! spawn as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; then
        warn "apt-get install $* failed, probably a package script that wanted an init system; finishing with dpkg --configure -a"
        spawn as_root env DEBIAN_FRONTEND=noninteractive dpkg --configure -a ||
            warn "dpkg --configure -a failed too; continuing with what was unpacked"
    fi
    remove_policy_guard
}

postgres_installed() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }
redis_installed() { have redis-server || [ -x /usr/bin/redis-server ]; }
rabbitmq_installed() { [ -x /usr/sbin/rabbitmq-server ] || have rabbitmq-server; }

install_missing() { # install_missing <dep...>
    local dep pkgs=()
    for dep in "$@"; do
        case "$dep" in
            postgres) postgres_installed || pkgs+=(postgresql) ;;
            redis) redis_installed || pkgs+=(redis-server) ;;
            rabbitmq) rabbitmq_installed || pkgs+=(rabbitmq-server) ;;
        esac
    done
    [ "${#pkgs[@]}" -eq 0 ] || apt_install "${pkgs[@]}"
    for dep in "$@"; do
        "${dep}_installed" || die "${TITLE[$dep]} is still not installed after apt-get; see the apt output above"
    done
}

# Finds the cluster configured for PG_PORT (any version), or creates one with the newest server.
start_postgres_local() {
    local ver name status logfile
    read -r ver name status logfile < <(pg_lsclusters -h 2>/dev/null |
        awk -v p="$PG_PORT" '$3 == p { print $1, $2, $4, $7; exit }') || true
    if [ -z "${ver:-}" ]; then
        ver=$(basename "$(dirname "$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n 1)")")")
        name=main
        [ -d "/etc/postgresql/$ver/main" ] && name="mercato_$PG_PORT"
        say "creating PostgreSQL $ver cluster '$name' on port $PG_PORT"
        as_root pg_createcluster --port "$PG_PORT" "$ver" "$name" >/dev/null
        status=down
        logfile="/var/log/postgresql/postgresql-$ver-$name.log"
    fi
    LOG_HINT[postgres]="see $logfile"
    if [ "$status" = online ]; then
        warn "PostgreSQL cluster $ver/$name is running but $(addr postgres) does not answer; check listen_addresses"
        STATUS[postgres]="running (not reachable)"
        return 0
    fi
    say "starting PostgreSQL cluster $ver/$name"
    spawn as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start ||
        die "PostgreSQL cluster $ver/$name did not start; see $logfile"
    STATUS[postgres]="started (apt)"
    record postgres local "$ver $name"
}

start_redis_local() {
    local log=/var/log/redis/mercato.log pidfile="$RUN_DIR/redis-$REDIS_PORT.pid"
    [ "$REDIS_PORT" = 6379 ] || log="/var/log/redis/mercato-$REDIS_PORT.log"
    mkdir -p "$RUN_DIR"
    as_root mkdir -p /var/lib/redis /var/log/redis
    say "starting redis-server on port $REDIS_PORT"
    # Nothing is persisted: the data is disposable test and development state.
    spawn as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile "$log" --pidfile "$pidfile" ||
        die "redis-server did not start; see $log"
    LOG_HINT[redis]="see $log"
    STATUS[redis]="started (apt)"
    record redis local "$pidfile"
}

# The node name the packaged broker uses: from the environment, the package's env file, or the host.
rabbitmq_default_node() {
    local node=${RABBITMQ_NODENAME:-}
    if [ -z "$node" ] && [ -r /etc/rabbitmq/rabbitmq-env.conf ]; then
        node=$(sed -n 's/^[[:space:]]*\(RABBITMQ_\)\{0,1\}NODENAME=["'\'']\{0,1\}\([^"'\'' ]*\).*/\2/p' \
            /etc/rabbitmq/rabbitmq-env.conf | tail -n 1)
    fi
    printf '%s\n' "${node:-rabbit@$(hostname -s)}"
}

# Environment for a broker node on AMQP_PORT. The standard port uses the packaged node unchanged; any
# other port gets its own node name, distribution port, listener and no plugins, so that it can run
# beside the packaged node (which is how the start path is exercised without disturbing it).
rabbitmq_node_env() { # prints VAR=value lines
    local default_node
    default_node=$(rabbitmq_default_node)
    if [ "$AMQP_PORT" = 5672 ]; then
        printf 'RABBITMQ_NODENAME=%s\n' "$default_node"
        return 0
    fi
    local conf="$RUN_DIR/rabbitmq-$AMQP_PORT.conf" plugins="$RUN_DIR/rabbitmq-$AMQP_PORT.plugins"
    mkdir -p "$RUN_DIR"
    printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users.guest = true\n' "$AMQP_PORT" >"$conf"
    printf '[].\n' >"$plugins"
    chmod 644 "$conf" "$plugins"
    printf 'RABBITMQ_NODENAME=mercato_%s@%s\n' "$AMQP_PORT" "${default_node#*@}"
    printf 'RABBITMQ_NODE_PORT=%s\n' "$AMQP_PORT"
    printf 'RABBITMQ_DIST_PORT=%s\n' "$((AMQP_PORT + 20000))"
    printf 'RABBITMQ_CONFIG_FILE=%s\n' "$conf"
    printf 'RABBITMQ_ENABLED_PLUGINS_FILE=%s\n' "$plugins"
}

rabbitmq_cmd() { # rabbitmq_cmd <node env lines> <command...>
    local envs
    mapfile -t envs <<<"$1"
    as_root env "${envs[@]}" "${@:2}"
}

start_rabbitmq_local() {
    local envs node
    envs=$(rabbitmq_node_env)
    node=$(sed -n 's/^RABBITMQ_NODENAME=//p' <<<"$envs")
    LOG_HINT[rabbitmq]="see /var/log/rabbitmq/$node.log"
    say "starting RabbitMQ node $node"
    spawn rabbitmq_cmd "$envs" rabbitmq-server -detached ||
        die "rabbitmq-server did not start; see /var/log/rabbitmq/$node.log"
    STATUS[rabbitmq]="started (apt)"
    record rabbitmq local "$node"
}

start_locally() { # start_locally <dep...>
    local dep
    for dep in "$@"; do
        is_loopback "${HOST[$dep]}" ||
            die "${TITLE[$dep]} is not reachable on $(addr "$dep") and that host is not this machine"
    done
    install_missing "$@"
    for dep in "$@"; do "start_${dep}_local"; done
}

# ---------------------------------------------------------------- readiness

# Best guess at where a reused server logs, for failure messages.
default_log_hint() {
    case "$1" in
        postgres)
            local logfile
            logfile=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $7; exit }') || true
            printf 'see %s' "${logfile:-the PostgreSQL server log}"
            ;;
        redis) printf 'see the Redis server log (e.g. /var/log/redis/)' ;;
        rabbitmq) printf 'see /var/log/rabbitmq/%s.log' "$(rabbitmq_default_node)" ;;
    esac
}

wait_ready() { # wait_ready <dep>; returns 1 after its timeout
    local dep=$1 deadline=$((SECONDS + TIMEOUT[$1]))
    until "${dep}_ready"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            printf '%s did not become ready on %s within %s s; %s\n' "${TITLE[$dep]}" "$(addr "$dep")" \
                "${TIMEOUT[$dep]}" "${LOG_HINT[$dep]:-$(default_log_hint "$dep")}" >&2
            return 1
        fi
        sleep 1
    done
}

# ---------------------------------------------------------------- role and databases

ensure_role() {
    if [ "$(mercato_psql -c 'select rolsuper from pg_roles where rolname = current_user' 2>/dev/null)" = t ]; then
        return 0
    fi
    say "creating the PostgreSQL login role '$DB_USER' (superuser, local development only)"
    local sql="DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
            CREATE ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASSWORD';
        ELSE
            ALTER ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASSWORD';
        END IF;
    END \$\$;"
    # Administrator access, tried in turn: TCP as postgres (trust setups), then the postgres OS user
    # on the local socket (peer authentication, Debian's default).
    if have psql && PGCONNECT_TIMEOUT=5 psql -X -q -w -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" \
        -U postgres -d postgres -c "$sql" >/dev/null 2>&1; then
        :
    elif is_loopback "$PG_HOST" && id postgres >/dev/null 2>&1 && have psql &&
        (cd / && as_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres \
            -c "$sql" >/dev/null); then
        :
    else
        die "cannot create the PostgreSQL role '$DB_USER' on $(addr postgres): connect as an administrator and run: CREATE ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASSWORD';"
    fi
    [ "$(mercato_psql -c 'select rolsuper from pg_roles where rolname = current_user' 2>/dev/null)" = t ] ||
        die "role '$DB_USER' exists but cannot log in over TCP on $(addr postgres); check pg_hba.conf"
}

ensure_databases() {
    local db created=()
    for db in "${SERVICE_DATABASES[@]}"; do
        if [ "$(mercato_psql -c "select 1 from pg_database where datname = '$db'")" != 1 ]; then
            mercato_psql -c "create database \"$db\" owner $DB_USER" >/dev/null
            created+=("$db")
        fi
    done
    if [ "${#created[@]}" -gt 0 ]; then
        say "created databases: ${created[*]}"
    else
        say "databases already exist: ${SERVICE_DATABASES[*]}"
    fi
}

# ---------------------------------------------------------------- commands

print_summary() {
    printf '\n%-11s %-22s %-20s %s\n' dependency address status version
    local dep
    for dep in "${DEPS[@]}"; do
        printf '%-11s %-22s %-20s %s\n' "${TITLE[$dep]}" "$(addr "$dep")" "${STATUS[$dep]:-unknown}" \
            "${VERSION[$dep]:-?}"
    done
    printf '\n'
}

cmd_up() {
    lock
    detect_compose
    local dep missing=()
    for dep in "${DEPS[@]}"; do
        if tcp_open "${HOST[$dep]}" "${PORT[$dep]}"; then
            say "${TITLE[$dep]}: $(addr "$dep") is reachable, reusing it"
            STATUS[$dep]=reused
            # What an earlier run started with compose logs there, not in a file on this machine.
            case "$(recorded "$dep" || true)" in
                compose\|*) LOG_HINT[$dep]="run '${COMPOSE[*]:0:2} logs $dep'" ;;
                *) ;;
            esac
        else
            say "${TITLE[$dep]}: nothing answers on $(addr "$dep")"
            missing+=("$dep")
        fi
    done

    if [ "${#missing[@]}" -gt 0 ]; then
        case "$MODE" in
            compose)
                docker_usable || die "MERCATO_DEPS_MODE=compose but no usable Docker engine with compose"
                start_with_compose "${missing[@]}"
                ;;
            local) start_locally "${missing[@]}" ;;
            auto)
                if docker_usable; then
                    start_with_compose "${missing[@]}"
                else
                    say "no usable Docker engine; using local daemons from Debian packages"
                    start_locally "${missing[@]}"
                fi
                ;;
            *) die "MERCATO_DEPS_MODE must be auto, compose or local, not '$MODE'" ;;
        esac
    fi

    ensure_postgres_client
    local failed=0
    for dep in "${DEPS[@]}"; do
        if wait_ready "$dep"; then
            say "${TITLE[$dep]} is ready on $(addr "$dep")"
        else
            STATUS[$dep]="${STATUS[$dep]:-unknown}, NOT READY"
            failed=1
        fi
    done
    if [ "$failed" -eq 1 ]; then
        print_summary
        die "dependencies are not ready (see the messages above)"
    fi

    ensure_role
    ensure_databases
    VERSION[postgres]=$(postgres_version)
    VERSION[redis]=$(redis_version)
    VERSION[rabbitmq]=$(rabbitmq_version)
    print_summary
    printf 'databases %s are ready; connect as postgres://%s:%s@%s/<database>\n' \
        "${SERVICE_DATABASES[*]}" "$DB_USER" "$DB_PASSWORD" "$(addr postgres)"
}

cmd_status() {
    detect_compose
    local dep
    for dep in "${DEPS[@]}"; do
        if "${dep}_ready"; then STATUS[$dep]=ready; else STATUS[$dep]="not ready"; fi
        case "$(recorded "$dep" || true)" in
            compose\|*) STATUS[$dep]="${STATUS[$dep]} (compose)" ;;
            local\|*) STATUS[$dep]="${STATUS[$dep]} (apt)" ;;
            *) ;;
        esac
    done
    for dep in "${DEPS[@]}"; do
        case "${STATUS[$dep]}" in
            ready*) VERSION[$dep]=$("${dep}_version") ;;
            *) ;;
        esac
    done
    print_summary
    if [ -f "$STATE_FILE" ]; then
        printf 'started by this script (%s):\n' "$STATE_FILE"
        sed 's/^/  /' "$STATE_FILE"
    else
        printf 'this script has started nothing that is still recorded\n'
    fi
}

stop_one() { # stop_one <dep@port> <method> <detail>
    local key=$1 method=$2 detail=$3 dep=${1%@*}
    case "$method" in
        compose)
            say "stopping compose service $detail"
            "${COMPOSE[@]}" stop "$detail" || warn "docker compose could not stop $detail"
            ;;
        local)
            case "$dep" in
                postgres)
                    local ver=${detail% *} name=${detail#* }
                    say "stopping PostgreSQL cluster $ver/$name"
                    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" stop ||
                        warn "PostgreSQL cluster $ver/$name was not running"
                    ;;
                redis)
                    local pid
                    pid=$(cat "$detail" 2>/dev/null || true)
                    # Only the process this script started, still being redis-server, is signalled.
                    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = redis-server ]; then
                        say "stopping redis-server (pid $pid, $key)"
                        as_root kill "$pid"
                        local deadline=$((SECONDS + 15))
                        while [ -e "/proc/$pid" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
                    else
                        say "redis-server $key is no longer running"
                    fi
                    as_root rm -f "$detail"
                    ;;
                rabbitmq)
                    local port=${key#*@} envs
                    envs=$(AMQP_PORT=$port rabbitmq_node_env)
                    say "stopping RabbitMQ node $detail"
                    rabbitmq_cmd "$envs" rabbitmqctl -n "$detail" stop >/dev/null ||
                        warn "RabbitMQ node $detail was not running"
                    ;;
                *) warn "unknown entry in $STATE_FILE: $key" ;;
            esac
            ;;
        *) warn "unknown entry in $STATE_FILE: $key|$method|$detail" ;;
    esac
}

cmd_stop() {
    lock
    detect_compose
    if [ ! -f "$STATE_FILE" ]; then
        say "nothing to stop: this script has not started any dependency (reused ones are left alone)"
        return 0
    fi
    local key method detail
    while IFS='|' read -r key method detail; do
        [ -n "$key" ] && stop_one "$key" "$method" "$detail"
    done <"$STATE_FILE"
    rm -f "$STATE_FILE"
    say "stopped what deps.sh had started"
}

cmd_restart() { # cmd_restart <dep>
    [ "${1:-}" = rabbitmq ] || die "usage: deps.sh restart rabbitmq"
    lock
    detect_compose
    local how
    how=$(recorded rabbitmq || true)
    if [ "${how%%|*}" = compose ] || { docker_usable && compose_has_running rabbitmq; }; then
        say "restarting compose service rabbitmq"
        spawn "${COMPOSE[@]}" restart rabbitmq
        LOG_HINT[rabbitmq]="run '${COMPOSE[*]:0:2} logs rabbitmq'"
    elif is_loopback "$AMQP_HOST" && rabbitmq_installed; then
        local envs node
        envs=$(rabbitmq_node_env)
        node=$(sed -n 's/^RABBITMQ_NODENAME=//p' <<<"$envs")
        LOG_HINT[rabbitmq]="see /var/log/rabbitmq/$node.log"
        say "restarting the RabbitMQ application on node $node"
        rabbitmq_cmd "$envs" rabbitmqctl -n "$node" stop_app >/dev/null
        spawn rabbitmq_cmd "$envs" rabbitmqctl -n "$node" start_app >/dev/null
    else
        die "cannot restart RabbitMQ on $(addr rabbitmq): neither a compose service nor a local node"
    fi
    wait_ready rabbitmq || exit 1
    say "RabbitMQ is ready on $(addr rabbitmq)"
}

cmd_clean_test_dbs() {
    lock
    detect_compose
    postgres_ready || die "PostgreSQL does not answer on $(addr postgres); nothing cleaned"
    local dbs db count=0
    dbs=$(mercato_psql -c "select datname from pg_database where datname like 'mercato\_test\_%' order by 1")
    for db in $dbs; do
        # Test templates are marked as templates, which cannot be dropped until unmarked.
        mercato_psql -c "alter database \"$db\" is_template false" >/dev/null
        mercato_psql -c "drop database if exists \"$db\" with (force)" >/dev/null
        count=$((count + 1))
    done
    say "dropped $count leftover test database(s) on $(addr postgres)"
}

main() {
    local cmd=${1:-up}
    case "$cmd" in
        up) cmd_up ;;
        status) cmd_status ;;
        stop) cmd_stop ;;
        restart) cmd_restart "${2:-}" ;;
        clean-test-dbs) cmd_clean_test_dbs ;;
        -h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" ;;
        *) die "unknown command '$cmd' (try: up, status, stop, restart rabbitmq, clean-test-dbs)" ;;
    esac
}

main "$@"
