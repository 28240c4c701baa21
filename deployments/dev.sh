#!/usr/bin/env bash
# Runs Mercato on this machine for development (`make dev`, `make dev-stop`).
#
# usage: deployments/dev.sh [up]     dependencies (deps.sh), build, start every service binary, wait
#                                    until each is ready and print where it listens
#        deployments/dev.sh status   the table only, starting nothing
#        deployments/dev.sh stop     stop the services this script started, then the dependencies
#                                    deps.sh started (servers that were already running stay up)
#
# Services are discovered, not listed: every services/<name>/Cargo.toml and bff/Cargo.toml with a
# binary target. Each one runs in the background with the variables of deployments/config/common.env
# and deployments/config/<name>.env, logs to deployments/.run/<name>.log and is ready when
# GET /readyz on its HTTP_ADDR answers 200. Services migrate their own databases at start.
#
# Environment (all optional): MERCATO_DEV_READY_TIMEOUT (seconds, default 60), CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Services run from the repository root, so relative paths in the config (WEB_ROOT) resolve.
cd "$ROOT"
RUN_DIR="$ROOT/deployments/.run"
CONFIG_DIR="$ROOT/deployments/config"
READY_TIMEOUT=${MERCATO_DEV_READY_TIMEOUT:-60}
CARGO=${CARGO:-cargo}

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- discovery

# Prints the binary a manifest builds: its first [[bin]] name, else the package name when
# src/main.rs exists, else nothing (a library-only crate).
binary_of() { # binary_of <Cargo.toml>
    local manifest=$1 found
    found=$(awk '
        function value(line) { sub(/^[^=]*=[[:space:]]*"/, "", line); sub(/".*/, "", line); return line }
        /^[[:space:]]*\[\[bin\]\]/ { section = "bin"; next }
        /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]]/, "", section); next }
        section == "bin" && /^[[:space:]]*name[[:space:]]*=/ { print "bin " value($0); exit }
        section == "[package]" && /^[[:space:]]*name[[:space:]]*=/ && package == "" { package = value($0) }
        END { if (package != "") print "package " package }
    ' "$manifest")
    case "$found" in
        bin\ *) printf '%s\n' "$(head -n 1 <<<"${found#bin }")" ;;
        package\ *) [ -f "$(dirname "$manifest")/src/main.rs" ] && printf '%s\n' "${found#package }" ;;
        *) ;;
    esac
    return 0
}

# Prints "name binary" for each service crate with a binary.
discover() {
    local manifest bin
    for manifest in "$ROOT"/services/*/Cargo.toml "$ROOT"/bff/Cargo.toml; do
        [ -f "$manifest" ] || continue
        bin=$(binary_of "$manifest")
        [ -n "$bin" ] && printf '%s %s\n' "$(basename "$(dirname "$manifest")")" "$bin"
    done
    return 0
}

target_dir() {
    "$CARGO" metadata --no-deps --format-version 1 --manifest-path "$ROOT/Cargo.toml" |
        grep -o '"target_directory":"[^"]*"' | sed 's/^"target_directory":"//; s/"$//'
}

# ---------------------------------------------------------------- configuration

# Prints the KEY=value lines of an env file (comments and blank lines dropped, values verbatim, as
# docker compose reads an env_file), so values are never evaluated by the shell.
env_lines() { # env_lines <file>
    [ -f "$1" ] || return 0
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%$'\r'}
        [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
        [[ "$line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        printf '%s=%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    done <"$1"
}

service_env() { # service_env <name>: common settings, then the service's own (later lines win)
    env_lines "$CONFIG_DIR/common.env"
    env_lines "$CONFIG_DIR/$1.env"
}

setting() { # setting <name> <KEY>: what the service reads, MERCATO_<NAME>__<KEY> else MERCATO__<KEY>
    local own env value
    own="MERCATO_$(printf '%s' "$1" | tr 'a-z-' 'A-Z_')__$2"
    env=$(service_env "$1")
    value=$(sed -n "s/^$own=//p" <<<"$env" | tail -n 1)
    [ -n "$value" ] || value=$(sed -n "s/^MERCATO__$2=//p" <<<"$env" | tail -n 1)
    printf '%s' "$value"
}

# ---------------------------------------------------------------- processes

pid_file() { printf '%s/svc-%s.pid' "$RUN_DIR" "$1"; }

# Prints the pid recorded for a service if that process is still the binary we started. After a
# rebuild the kernel reports the replaced executable as "<path> (deleted)": still ours, but stale.
running_pid() { # running_pid <name>
    local file pid bin exe
    file=$(pid_file "$1")
    [ -f "$file" ] || return 1
    read -r pid bin <"$file" || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    [ "$exe" = "$bin" ] || [ "$exe" = "$bin (deleted)" ] || return 1
    printf '%s\n' "$pid"
}

start_service() { # start_service <name> <binary path>
    local name=$1 bin=$2 log="$RUN_DIR/$1.log" envs
    mapfile -t envs < <(service_env "$name")
    printf '\n--- %s starting %s\n' "$(date -u +%FT%TZ)" "$bin" >>"$log"
    # setsid: its own session, so a Ctrl-C in the terminal that ran `make dev` does not reach it.
    env "${envs[@]}" setsid "$bin" >>"$log" 2>&1 </dev/null &
    printf '%s %s\n' "$!" "$bin" >"$(pid_file "$name")"
}

# Answers whether GET /readyz on host:port returns 200.
http_ready() { # http_ready <host:port>
    local host=${1%:*} port=${1##*:} code
    host=${host#[}
    host=${host%]}
    # shellcheck disable=SC2016 # the inner bash expands its own arguments
    code=$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "GET /readyz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" "$1" >&3
        head -n 1 <&3
    ' _ "$host" "$port" 2>/dev/null | awk '{ print $2 }') || return 1
    [ "$code" = 200 ]
}

# ---------------------------------------------------------------- commands

declare -A STATE=()

print_table() { # print_table <name...>
    printf '\n%-9s %-22s %-22s %s\n' service gRPC HTTP state
    local name
    for name in "$@"; do
        printf '%-9s %-22s %-22s %s\n' "$name" "$(setting "$name" GRPC_ADDR)" \
            "$(setting "$name" HTTP_ADDR)" "${STATE[$name]}"
    done
    printf '\nlogs: %s/<service>.log\n' "${RUN_DIR#"$ROOT"/}"
}

no_services() {
    printf '\ndependencies and databases are ready; no Mercato service crates exist yet '
    printf '(no binary crate under services/*/ or bff/), so there is nothing else to start\n'
}

cmd_up() {
    bash "$ROOT/deployments/deps.sh" up
    mkdir -p "$RUN_DIR"

    local services=() name bin
    while read -r name bin; do services+=("$name:$bin"); done < <(discover)
    if [ "${#services[@]}" -eq 0 ]; then
        no_services
        return 0
    fi

    say "building the workspace binaries"
    (cd "$ROOT" && "$CARGO" build --workspace --bins)
    local target names=() entry path pid
    target=$(target_dir)
    for entry in "${services[@]}"; do
        name=${entry%%:*}
        path="$target/debug/${entry#*:}"
        names+=("$name")
        [ -x "$path" ] || die "the build did not produce $path for the $name service"
        if pid=$(running_pid "$name"); then
            STATE[$name]="reused (pid $pid)"
            [ "$(readlink "/proc/$pid/exe")" = "$path" ] ||
                STATE[$name]="reused (pid $pid, older build: make dev-stop && make dev to update)"
        else
            start_service "$name" "$path"
            STATE[$name]="started"
        fi
    done

    say "waiting up to ${READY_TIMEOUT} s for each service's /readyz"
    local deadline=$((SECONDS + READY_TIMEOUT)) failed=0 http log
    for name in "${names[@]}"; do
        http=$(setting "$name" HTTP_ADDR)
        log="${RUN_DIR#"$ROOT"/}/$name.log"
        if [ -z "$http" ]; then
            STATE[$name]="${STATE[$name]}, readiness unknown (no HTTP_ADDR in deployments/config/$name.env)"
            continue
        fi
        until http_ready "$http"; do
            if ! running_pid "$name" >/dev/null; then
                STATE[$name]="exited, not ready: see $log"
                failed=1
                continue 2
            fi
            if [ "$SECONDS" -ge "$deadline" ]; then
                STATE[$name]="not ready after ${READY_TIMEOUT} s: see $log"
                failed=1
                continue 2
            fi
            sleep 0.5
        done
        STATE[$name]="ready, ${STATE[$name]}"
    done
    print_table "${names[@]}"
    [ "$failed" -eq 0 ] || die "some services are not ready (see the table above)"
}

cmd_status() {
    bash "$ROOT/deployments/deps.sh" status
    local names=() name bin pid http
    while read -r name bin; do names+=("$name"); done < <(discover)
    if [ "${#names[@]}" -eq 0 ]; then
        printf 'no Mercato service crates exist yet\n'
        return 0
    fi
    for name in "${names[@]}"; do
        http=$(setting "$name" HTTP_ADDR)
        if ! pid=$(running_pid "$name"); then
            STATE[$name]="not running"
        elif [ -n "$http" ] && http_ready "$http"; then
            STATE[$name]="ready (pid $pid)"
        else
            STATE[$name]="running, not ready (pid $pid)"
        fi
    done
    print_table "${names[@]}"
}

stop_service() { # stop_service <name>; fails when it was no longer running
    local name=$1 pid deadline
    if ! pid=$(running_pid "$name"); then
        rm -f "$(pid_file "$name")"
        return 1
    fi
    say "stopping $name (pid $pid)"
    kill -TERM "$pid"
    # Services drain in-flight requests on SIGTERM; give them that time before insisting.
    deadline=$((SECONDS + 20))
    while [ -e "/proc/$pid" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if [ -e "/proc/$pid" ]; then
        say "$name did not stop within 20 s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pid_file "$name")"
}

cmd_stop() {
    local file name stopped=0
    for file in "$RUN_DIR"/svc-*.pid; do
        [ -f "$file" ] || continue
        name=${file##*/svc-}
        name=${name%.pid}
        stop_service "$name" && stopped=$((stopped + 1))
    done
    say "stopped $stopped service(s) started by dev.sh"
    bash "$ROOT/deployments/deps.sh" stop
}

case "${1:-up}" in
    up) cmd_up ;;
    status) cmd_status ;;
    stop) cmd_stop ;;
    -h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" ;;
    *) die "unknown command '$1' (try: up, status, stop)" ;;
esac
