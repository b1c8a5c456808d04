#!/usr/bin/env bash
# Private PostgreSQL + RabbitMQ instances for the hotline-router test suite.
#
#   eval "$(scripts/services.sh start)"   # install if missing, start, print exports
#   scripts/services.sh status            # one line per service (exit 3 if any is down)
#   scripts/services.sh stop              # stop what `start` started (idempotent)
#   scripts/services.sh rabbitmqctl ARGS  # run rabbitmqctl against our node (debugging)
#   scripts/services.sh config            # this checkout's state dir and node name
#   scripts/services.sh pg-restart [SECS] # crash-stop PostgreSQL, wait SECS (0), start it again
#
# stdout of `start` is only the `export ...` lines; progress goes to stderr.
#
# Both services listen on 127.0.0.1 only and keep all state under
# $HOTLINE_TEST_SERVICES_DIR (default: /tmp/hotline-test-services-<checkout id>, where the id
# is derived from the checkout's path: each checkout has its own servers, and a second checkout
# never finds, reuses or stops the first one's; /tmp because PostgreSQL runs as `postgres`,
# which may not enter the checkout's parents). The system
# PostgreSQL cluster / RabbitMQ node (if any) are never touched: we use our own
# data dirs, ports, Erlang node name, cookie and epmd port.
#
# Environment (all optional):
#   HOTLINE_TEST_PG_PORT          PostgreSQL port                 (54329)
#   HOTLINE_TEST_AMQP_PORT        AMQP port                       (56729)
#     When these are not set and a default port is taken by something else
#     (e.g. another checkout's instance), `start` picks the next free port(s)
#     and prints URLs with them; when set, a busy port is an error.
#   HOTLINE_TEST_AMQP_DIST_PORT   Erlang distribution port        (AMQP port + 1)
#   HOTLINE_TEST_EPMD_PORT        private epmd port               (AMQP port + 2)
#   HOTLINE_TEST_AMQP_NODENAME    Erlang node name                (hotline-test-<checkout id>@localhost)
#   HOTLINE_TEST_SERVICES_DIR     state directory                 (/tmp/hotline-test-services-<checkout id>)
#   HOTLINE_TEST_SERVICES_TIMEOUT seconds to wait for each service (60)
#   HOTLINE_TEST_PG_BINDIR        PostgreSQL bin dir              (newest /usr/lib/postgresql/*/bin)
#
# Notes:
# * PostgreSQL refuses to run as root: initdb/pg_ctl run as the `postgres`
#   system user, which therefore needs search (x) permission on every parent
#   directory of the state dir.
# * RabbitMQ runs as the invoking user (root in CI) with HOME pointed at its
#   private dir, so the Erlang cookie used by both the node and rabbitmqctl is
#   <state>/rabbitmq/.erlang.cookie (never /root or /var/lib/rabbitmq).
# * The RabbitMQ broker state (mnesia) is wiped on every fresh start, so each
#   `start` gives an empty broker; PostgreSQL data persists across restarts.
# * When packages must be installed, a temporary /usr/sbin/policy-rc.d (exit
#   101) is put in place if none exists, so the Debian maintainer scripts do not
#   start the system PostgreSQL cluster / rabbit@<host> node (which would listen
#   on 5432 / 0.0.0.0:5672 / 0.0.0.0:4369). If a policy-rc.d already exists we
#   leave it alone, and any system services the install starts are left running
#   (they do not conflict with ours).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)

# 12 hex digits of the SHA-256 of the checkout's real path: stable for a checkout, distinct
# between checkouts.
CHECKOUT_ID=$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
SVC_DIR=${HOTLINE_TEST_SERVICES_DIR:-/tmp/hotline-test-services-$CHECKOUT_ID}
PG_PORT=${HOTLINE_TEST_PG_PORT:-54329}
AMQP_PORT=${HOTLINE_TEST_AMQP_PORT:-56729}
# May `start` move to other ports when the defaults are taken?
PG_PORT_AUTO=1
[[ -z ${HOTLINE_TEST_PG_PORT:-} ]] || PG_PORT_AUTO=0
AMQP_PORTS_AUTO=1
[[ -z ${HOTLINE_TEST_AMQP_PORT:-}${HOTLINE_TEST_AMQP_DIST_PORT:-}${HOTLINE_TEST_EPMD_PORT:-} ]] || AMQP_PORTS_AUTO=0
TIMEOUT=${HOTLINE_TEST_SERVICES_TIMEOUT:-60}

PG_USER=hotline
PG_PASSWORD=hotline
PG_DB=hotline_test
AMQP_USER=hotline
AMQP_PASSWORD=hotline

PG_DIR=$SVC_DIR/pg
PG_DATA=$PG_DIR/data
PG_LOG=$PG_DIR/postgresql.log
PG_MARKER=$PG_DIR/.initialized

RMQ_DIR=$SVC_DIR/rabbitmq
RMQ_PIDFILE=$RMQ_DIR/rabbitmq.pid
RMQ_STARTUP_LOG=$RMQ_DIR/log/startup.log
EPMD_PIDFILE=$RMQ_DIR/epmd.pid
EPMD_LOG=$RMQ_DIR/log/epmd.log

PG_BIN=

log() { printf '[services] %s\n' "$*" >&2; }

die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}

# Print the last lines of a log file to stderr (for failure diagnostics).
show_tail() {
    local file=$1 lines=${2:-40}
    if [[ -s $file ]]; then
        printf '[services] ---- last %s lines of %s ----\n' "$lines" "$file" >&2
        tail -n "$lines" -- "$file" | sed 's/^/    /' >&2
        printf '[services] ---- end of %s ----\n' "$file" >&2
    else
        printf '[services] (log %s is empty or missing)\n' "$file" >&2
    fi
}

check_port_var() {
    local name=$1 value=$2
    if ! [[ $value =~ ^[0-9]+$ ]] || ((value < 1 || value > 65535)); then
        die "$name must be a TCP port number (1-65535), got '$value'"
    fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True when $1 is a live pid (not a zombie).
pid_alive() {
    local pid=$1 state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(awk '/^State:/ {print $2; exit}' "/proc/$pid/status" 2>/dev/null) || state=
    [[ $state != Z ]]
}

read_pidfile() {
    local file=$1 pid=
    [[ -r $file ]] && { read -r pid <"$file" || true; }
    printf '%s' "$pid"
}

# Print the value of variable $2 in the environment process $1 started with.
pid_env() {
    local pid=$1 name=$2 item
    [[ -r /proc/$pid/environ ]] || return 1
    while IFS= read -r -d '' item; do
        if [[ $item == "$name="* ]]; then
            printf '%s' "${item#*=}"
            return 0
        fi
    done <"/proc/$pid/environ"
    return 1
}

pid_comm() {
    local comm=
    [[ -r /proc/$1/comm ]] && { read -r comm <"/proc/$1/comm" || true; }
    printf '%s' "$comm"
}

# ---------------------------------------------------------------- install ---

POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_CREATED=0

# Set while `start` runs: what this invocation started, so a failed start
# does not leave half-started services behind (pre-existing ones are kept).
STARTING=0
STARTED_PG=0
STARTED_RMQ=0

cleanup() {
    local rc=$?
    if ((POLICY_RC_CREATED)); then
        rm -f -- "$POLICY_RC"
        POLICY_RC_CREATED=0
    fi
    if ((STARTING && rc != 0 && (STARTED_PG || STARTED_RMQ))); then
        STARTING=0
        log "start failed: stopping what this run started"
        if ((STARTED_RMQ)); then rmq_stop || true; fi
        if ((STARTED_PG)); then pg_stop || true; fi
    fi
}
trap cleanup EXIT
# Make SIGINT/SIGTERM/SIGHUP run the EXIT trap too (bash skips it otherwise).
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# Newest PostgreSQL bin dir that has everything we need (empty if none).
find_pg_bindir() {
    if [[ -n ${HOTLINE_TEST_PG_BINDIR:-} ]]; then
        printf '%s' "$HOTLINE_TEST_PG_BINDIR"
        return
    fi
    local d best=
    while IFS= read -r d; do
        if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres && -x $d/psql ]]; then
            best=$d
        fi
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V)
    printf '%s' "$best"
}

rabbitmq_present() {
    pkg_installed rabbitmq-server &&
        [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server && -x /usr/lib/rabbitmq/bin/rabbitmqctl ]] &&
        command -v epmd >/dev/null
}

ensure_packages() {
    local missing=()
    PG_BIN=$(find_pg_bindir)
    [[ -n $PG_BIN ]] || missing+=(postgresql)
    rabbitmq_present || missing+=(rabbitmq-server)
    ((${#missing[@]})) || return 0

    local apt_log=$SVC_DIR/apt.log
    ((EUID == 0)) || die "missing packages (${missing[*]}) and not root: install them first"
    command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get"

    if [[ ! -e $POLICY_RC ]]; then
        # Keep maintainer scripts from starting the *system* services.
        printf '#!/bin/sh\n# temporary, created by hotline-router scripts/services.sh\nexit 101\n' >"$POLICY_RC"
        chmod 0755 "$POLICY_RC"
        POLICY_RC_CREATED=1
    else
        log "note: $POLICY_RC exists; the install may start system services (left alone)"
    fi

    local t0=$SECONDS
    log "installing ${missing[*]} with apt-get (log: $apt_log) ..."
    : >"$apt_log"
    if ! apt-get update -q -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300 </dev/null >>"$apt_log" 2>&1; then
        show_tail "$apt_log"
        die "apt-get update failed"
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null >>"$apt_log" 2>&1; then
        show_tail "$apt_log"
        die "apt-get install ${missing[*]} failed"
    fi
    cleanup
    log "installed ${missing[*]} in $((SECONDS - t0))s"

    PG_BIN=$(find_pg_bindir)
    [[ -n $PG_BIN ]] || die "postgresql installed but no /usr/lib/postgresql/*/bin/{initdb,pg_ctl,postgres,psql}"
    rabbitmq_present || die "rabbitmq-server installed but /usr/lib/rabbitmq/bin/rabbitmq-server or epmd missing"
}

# ------------------------------------------------------------- postgresql ---

# Run a command as the postgres system user (PostgreSQL refuses to run as root).
as_postgres() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        [[ $(id -un) == postgres ]] || die "PostgreSQL must run as 'postgres'; run this script as root"
        (cd / && "$@")
    fi
}

# Escape a value for a single-quoted postgresql.conf string.
pg_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# Prints the postmaster pid if *our* postmaster is running.
pg_pid() {
    local pid cwd
    pid=$(read_pidfile "$PG_DATA/postmaster.pid")
    pid_alive "$pid" || return 1
    # The postmaster chdir()s into its data directory: that identifies ours
    # even if a stale pid file points at a reused pid.
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
    [[ $cwd == "$(readlink -f -- "$PG_DATA")" ]] || return 1
    printf '%s' "$pid"
}

# Port the running postmaster listens on (line 4 of postmaster.pid).
pg_running_port() {
    sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null
}

pg_clear_stale() {
    local f
    if [[ -e $PG_DATA/postmaster.pid ]]; then
        log "postgres: removing stale $PG_DATA/postmaster.pid"
        rm -f -- "$PG_DATA/postmaster.pid"
    fi
    for f in "$PG_DIR"/.s.PGSQL.*; do
        [[ -e $f ]] && rm -f -- "$f"
    done
    return 0
}

# psql as superuser through our private unix socket; SQL on stdin.
pg_psql_admin() {
    as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres
}

pg_init() {
    local major bin_major
    if [[ -f $PG_MARKER && -s $PG_DATA/PG_VERSION ]]; then
        read -r major <"$PG_DATA/PG_VERSION"
        bin_major=$("$PG_BIN/postgres" -V | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
        [[ $major == "$bin_major" ]] && return 0
        log "postgres: data dir is version $major but binaries are $bin_major; re-initialising"
    fi
    rm -rf -- "$PG_DATA" "$PG_MARKER"
    log "postgres: initdb ($PG_BIN) ..."
    if ! as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 --no-sync \
        </dev/null >"$PG_DIR/initdb.log" 2>&1; then
        show_tail "$PG_DIR/initdb.log"
        die "postgres: initdb failed"
    fi
    printf "\n# test settings (port, sockets, fsync...) written by scripts/services.sh\ninclude_if_exists = 'hotline_test.conf'\n" \
        >>"$PG_DATA/postgresql.conf"
    touch "$PG_MARKER"
}

pg_write_conf() {
    # Rewritten on every start so port changes take effect.
    local conf=$PG_DATA/hotline_test.conf
    cat >"$conf" <<EOF
# generated by scripts/services.sh -- do not edit
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = $(pg_quote "$PG_DIR")
unix_socket_permissions = 0700
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
    chown postgres:postgres "$conf"
    chmod 0600 "$conf"
}

pg_start() {
    local pid sock
    mkdir -p -- "$PG_DIR"
    if ((EUID == 0)); then
        chown postgres:postgres "$PG_DIR"
        [[ ! -e $PG_DATA ]] || chown -R postgres:postgres "$PG_DATA"
    fi
    chmod 0700 "$PG_DIR"
    as_postgres test -w "$PG_DIR" -a -x "$PG_DIR" ||
        die "user postgres cannot access $PG_DIR (a parent directory is not searchable by 'postgres'?); set HOTLINE_TEST_SERVICES_DIR to a directory it can reach"
    sock=$PG_DIR/.s.PGSQL.65535.lock
    ((${#sock} <= 107)) ||
        die "unix socket path $sock is too long for PostgreSQL (max 107 bytes); set HOTLINE_TEST_SERVICES_DIR to a shorter path"

    if pid=$(pg_pid); then
        local running_port
        running_port=$(pg_running_port)
        if [[ $running_port != "$PG_PORT" ]]; then
            ((PG_PORT_AUTO)) ||
                die "postgres: already running on port $running_port (pid $pid), not $PG_PORT; run 'scripts/services.sh stop' first"
            PG_PORT=$running_port
        fi
        log "postgres: already running (pid $pid)"
    else
        pg_clear_stale
        if port_open "$PG_PORT"; then
            ((PG_PORT_AUTO)) ||
                die "postgres: port 127.0.0.1:$PG_PORT is already in use by another process; set HOTLINE_TEST_PG_PORT"
            local base=$PG_PORT
            while port_open "$PG_PORT"; do
                PG_PORT=$((PG_PORT + 1))
                ((PG_PORT < base + 50)) || die "postgres: ports $base-$PG_PORT are all in use; set HOTLINE_TEST_PG_PORT"
            done
            log "postgres: port $base is taken by another process; using $PG_PORT"
        fi
        pg_init
        pg_write_conf
        log "postgres: starting on 127.0.0.1:$PG_PORT (data $PG_DATA) ..."
        STARTED_PG=1
        if ! as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" -s start \
            </dev/null >&2; then
            show_tail "$PG_LOG"
            die "postgres: failed to start within ${TIMEOUT}s"
        fi
        pid=$(pg_pid) || {
            show_tail "$PG_LOG"
            die "postgres: pg_ctl reported success but no postmaster is running"
        }
    fi

    # Idempotent role + database setup (superuser via our private socket).
    if ! pg_psql_admin >/dev/null 2>"$PG_DIR/setup.err" <<EOF; then
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
        CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    ELSE
        ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    END IF;
END
\$\$;
-- The tests drop their databases WITH (FORCE); an autovacuum worker busy in one belongs to no
-- role of ours, and terminating it needs pg_signal_backend.
GRANT pg_signal_backend TO $PG_USER;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
EOF
        show_tail "$PG_DIR/setup.err"
        show_tail "$PG_LOG" 20
        die "postgres: creating role/database failed"
    fi

    # End-to-end check: password login over TCP, like the test suite does.
    local deadline=$((SECONDS + TIMEOUT))
    until PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -At \
        -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -c 'select 1' \
        </dev/null >/dev/null 2>"$PG_DIR/check.err"; do
        if ((SECONDS >= deadline)); then
            show_tail "$PG_DIR/check.err"
            show_tail "$PG_LOG"
            die "postgres: not accepting connections on 127.0.0.1:$PG_PORT after ${TIMEOUT}s"
        fi
        sleep 0.2
    done
    log "postgres: ready on 127.0.0.1:$PG_PORT (pid $pid)"
}

pg_stop() {
    local pid i
    if ! pid=$(pg_pid); then
        [[ -d $PG_DATA ]] && pg_clear_stale
        log "postgres: not running"
        return 0
    fi
    log "postgres: stopping (pid $pid) ..."
    PG_BIN=${PG_BIN:-$(find_pg_bindir)}
    if [[ -z $PG_BIN ]] || ! as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 -s stop \
        </dev/null >&2; then
        log "postgres: pg_ctl stop failed; sending SIGQUIT/SIGKILL to $pid"
        kill -QUIT "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.2; done
        pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
    fi
    for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.2; done
    pid_alive "$pid" && die "postgres: postmaster $pid did not exit"
    pg_clear_stale
    log "postgres: stopped"
}

pg_status() {
    local pid
    if pid=$(pg_pid); then
        printf 'postgres: running (pid %s) on 127.0.0.1:%s, data %s\n' "$pid" "$(pg_running_port)" "$PG_DATA"
    else
        printf 'postgres: stopped\n'
        return 1
    fi
}

# Crash PostgreSQL (immediate stop: connections cut mid-transaction, as in a server failure),
# stay down $1 seconds, start it again on the same port and data (the fault tests use this).
pg_restart() {
    local down=${1:-0} pid
    [[ $down =~ ^[0-9]+([.][0-9]+)?$ ]] || die "pg-restart: seconds must be a number, got '$down'"
    PG_BIN=$(find_pg_bindir)
    [[ -n $PG_BIN ]] || die "postgres: no PostgreSQL binaries"
    pid=$(pg_pid) || die "postgres: not running (nothing to restart)"
    log "postgres: crash-stopping (pid $pid), down for ${down}s ..."
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 -s stop </dev/null >&2 ||
        die "postgres: immediate stop failed"
    sleep "$down"
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" -s start </dev/null >&2 || {
        show_tail "$PG_LOG"
        die "postgres: failed to start again"
    }
    log "postgres: running again (pid $(pg_pid))"
}

# --------------------------------------------------------------- rabbitmq ---

# Use the settings a running node was started with (so stop/status work even
# if the HOTLINE_TEST_* variables differ from those used at start).
rmq_adopt_running() {
    local pid=$1
    AMQP_PORT=$(pid_env "$pid" RABBITMQ_NODE_PORT) || AMQP_PORT=
    DIST_PORT=$(pid_env "$pid" RABBITMQ_DIST_PORT) || DIST_PORT=
    EPMD_PORT=$(pid_env "$pid" ERL_EPMD_PORT) || EPMD_PORT=
    CTL_PORT_MIN=$(pid_env "$pid" RABBITMQ_CTL_DIST_PORT_MIN) || CTL_PORT_MIN=
    CTL_PORT_MAX=$(pid_env "$pid" RABBITMQ_CTL_DIST_PORT_MAX) || CTL_PORT_MAX=
    RMQ_NODENAME=$(pid_env "$pid" RABBITMQ_NODENAME) || RMQ_NODENAME=
}

rmq_setup_vars() {
    DIST_PORT=${HOTLINE_TEST_AMQP_DIST_PORT:-$((AMQP_PORT + 1))}
    EPMD_PORT=${HOTLINE_TEST_EPMD_PORT:-$((AMQP_PORT + 2))}
    CTL_PORT_MIN=$((AMQP_PORT + 3))
    CTL_PORT_MAX=$((AMQP_PORT + 12))
    RMQ_NODENAME=${HOTLINE_TEST_AMQP_NODENAME:-hotline-test-$CHECKOUT_ID@localhost}
    check_port_var HOTLINE_TEST_AMQP_DIST_PORT "$DIST_PORT"
    check_port_var HOTLINE_TEST_EPMD_PORT "$EPMD_PORT"
    check_port_var "rabbitmqctl dist port (HOTLINE_TEST_AMQP_PORT + 12)" "$CTL_PORT_MAX"
}

# Export the private RabbitMQ/Erlang environment into the current (sub)shell;
# callers use it as `( rmq_env; exec cmd ... )` so that the command is exec'd
# directly (no bash process holding on to our stdout). Every RABBITMQ_* and
# ERL_* variable from the caller is dropped first, so nothing (e.g. a
# RABBITMQ_CONFIG_FILE meant for another broker) leaks in.
rmq_env() {
    local v
    while IFS= read -r v; do
        case $v in RABBITMQ_* | ERL_*) unset "$v" ;; esac
    done < <(compgen -e)
    export HOME=$RMQ_DIR # => $RMQ_DIR/.erlang.cookie for node and CLI
    export RABBITMQ_NODENAME=$RMQ_NODENAME
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$AMQP_PORT
    export RABBITMQ_DIST_PORT=$DIST_PORT
    export RABBITMQ_CONF_ENV_FILE=$RMQ_DIR/rabbitmq-env.conf
    export RABBITMQ_CONFIG_FILE=$RMQ_DIR/rabbitmq.conf
    export RABBITMQ_ADVANCED_CONFIG_FILE=$RMQ_DIR/advanced.config
    export RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ_DIR/enabled_plugins
    export RABBITMQ_MNESIA_BASE=$RMQ_DIR/mnesia
    export RABBITMQ_LOG_BASE=$RMQ_DIR/log
    export RABBITMQ_PID_FILE=$RMQ_PIDFILE
    export RABBITMQ_PLUGINS_EXPAND_DIR=$RMQ_DIR/plugins-expand
    # Erlang distribution (node and CLI) on loopback only.
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
    export RABBITMQ_CTL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
    export RABBITMQ_CTL_DIST_PORT_MIN=$CTL_PORT_MIN
    export RABBITMQ_CTL_DIST_PORT_MAX=$CTL_PORT_MAX
    export ERL_EPMD_PORT=$EPMD_PORT
    export ERL_EPMD_ADDRESS=127.0.0.1 # in case the VM has to spawn epmd itself
    export ERL_CRASH_DUMP=$RMQ_DIR/log/erl_crash.dump
    cd "$RMQ_DIR"
}

# rabbitmqctl against our node; $RMQCTL_TIMEOUT bounds how long it may take.
rmqctl() {
    (
        rmq_env
        exec timeout "${RMQCTL_TIMEOUT:-$TIMEOUT}" /usr/lib/rabbitmq/bin/rabbitmqctl "$@"
    )
}

is_our_beam() {
    pid_alive "$1" && [[ $(pid_comm "$1") == beam* ]] &&
        [[ $(pid_env "$1" RABBITMQ_MNESIA_BASE) == "$RMQ_DIR/mnesia" ]]
}

# Prints the beam pid if *our* node is running. Falls back to scanning /proc
# when the pid file is missing/stale (e.g. an earlier `start` was killed
# before the node wrote it).
rmq_pid() {
    local pid d
    pid=$(read_pidfile "$RMQ_PIDFILE")
    if ! is_our_beam "$pid"; then
        pid=
        for d in /proc/[0-9]*; do
            [[ $(pid_comm "${d#/proc/}") == beam* ]] || continue
            if is_our_beam "${d#/proc/}"; then
                pid=${d#/proc/}
                break
            fi
        done
        [[ -n $pid ]] || return 1
    fi
    printf '%s' "$pid"
}

# Prints the pid of the epmd we started, if it is still running.
epmd_pid() {
    local pid
    pid=$(read_pidfile "$EPMD_PIDFILE")
    pid_alive "$pid" && [[ $(pid_comm "$pid") == epmd ]] || return 1
    printf '%s' "$pid"
}

# Stop the epmd we started (if any; never someone else's).
epmd_stop() {
    local epid i
    if epid=$(epmd_pid); then
        kill -TERM "$epid" 2>/dev/null || true
        for ((i = 0; i < 25; i++)); do pid_alive "$epid" || break; sleep 0.2; done
        if pid_alive "$epid"; then kill -KILL "$epid" 2>/dev/null || true; fi
        log "rabbitmq: stopped our epmd (pid $epid)"
    fi
    rm -f -- "$EPMD_PIDFILE"
}

rmq_write_files() {
    mkdir -p -- "$RMQ_DIR/log"
    chmod 0700 "$RMQ_DIR"
    local cookie=$RMQ_DIR/.erlang.cookie
    if [[ ! -s $cookie ]]; then
        rm -f -- "$cookie"
        (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F' >"$cookie")
    fi
    chmod 0400 "$cookie" # Erlang rejects cookie files readable by others
    printf '# intentionally empty: keeps /etc/rabbitmq/rabbitmq-env.conf out\n' >"$RMQ_DIR/rabbitmq-env.conf"
    printf '[].\n' >"$RMQ_DIR/enabled_plugins"
    printf '[].\n' >"$RMQ_DIR/advanced.config"
    # default_user is created (with full permissions on default_vhost) when
    # the node boots on an empty database, which is every fresh start.
    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# generated by scripts/services.sh -- do not edit
default_vhost = /
default_user = $AMQP_USER
default_pass = $AMQP_PASSWORD
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
log.console = false
log.file.level = info
# training.run holds its (late-acked) message for as long as training takes: allow 4 hours
consumer_timeout = 14400000
EOF
}

epmd_ensure() {
    local pid i
    if pid=$(epmd_pid); then
        log "rabbitmq: reusing our epmd (pid $pid) on 127.0.0.1:$EPMD_PORT"
        return 0
    fi
    rm -f -- "$EPMD_PIDFILE"
    # (rmq_pick_ports already decided that a busy epmd port is acceptable)
    port_open "$EPMD_PORT" && return 0
    setsid epmd -port "$EPMD_PORT" -address 127.0.0.1 </dev/null >>"$EPMD_LOG" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$EPMD_PIDFILE"
    for ((i = 0; i < 50; i++)); do
        port_open "$EPMD_PORT" && return 0
        pid_alive "$pid" || break
        sleep 0.1
    done
    show_tail "$EPMD_LOG"
    die "rabbitmq: epmd did not start on 127.0.0.1:$EPMD_PORT; set HOTLINE_TEST_EPMD_PORT"
}

# True if AMQP/dist ports are free and the epmd port is free or our own epmd.
rmq_ports_free() {
    local p
    for p in "$AMQP_PORT" "$DIST_PORT"; do
        port_open "$p" && return 1
    done
    epmd_pid >/dev/null || ! port_open "$EPMD_PORT"
}

# Keep the configured ports if free; otherwise (only when no port variable
# was set) move the whole block (AMQP, dist, epmd, CLI) up in steps of 20.
rmq_pick_ports() {
    local base=$AMQP_PORT k
    rmq_ports_free && return 0
    if ((!AMQP_PORTS_AUTO)); then
        port_open "$AMQP_PORT" &&
            die "rabbitmq: port 127.0.0.1:$AMQP_PORT is already in use by another process; set HOTLINE_TEST_AMQP_PORT"
        port_open "$DIST_PORT" &&
            die "rabbitmq: dist port 127.0.0.1:$DIST_PORT is already in use by another process; set HOTLINE_TEST_AMQP_DIST_PORT"
        log "rabbitmq: something already listens on epmd port 127.0.0.1:$EPMD_PORT; assuming it is an epmd and using it"
        return 0
    fi
    epmd_stop # a leftover epmd of ours would pin the old block
    for ((k = 1; k <= 10; k++)); do
        AMQP_PORT=$((base + 20 * k))
        rmq_setup_vars
        if rmq_ports_free; then
            log "rabbitmq: a port in $base-$((base + 2)) is taken by another process; using $AMQP_PORT-$((AMQP_PORT + 12))"
            return 0
        fi
    done
    die "rabbitmq: no free port block found from $base on; set HOTLINE_TEST_AMQP_PORT"
}

rmq_start() {
    local pid wrapper='' deadline p
    rmq_setup_vars
    mkdir -p -- "$RMQ_DIR"
    if pid=$(rmq_pid); then
        local want="$AMQP_PORT $DIST_PORT $EPMD_PORT $RMQ_NODENAME"
        rmq_adopt_running "$pid"
        if [[ "$AMQP_PORT $DIST_PORT $EPMD_PORT $RMQ_NODENAME" != "$want" ]] &&
            { ((!AMQP_PORTS_AUTO)) || [[ $RMQ_NODENAME != "${want##* }" ]]; }; then
            die "rabbitmq: already running with port/dist/epmd/node '$AMQP_PORT $DIST_PORT $EPMD_PORT $RMQ_NODENAME' (pid $pid), not '$want'; run 'scripts/services.sh stop' first"
        fi
        log "rabbitmq: already running (pid $pid, node $RMQ_NODENAME)"
        [[ -s $RMQ_PIDFILE ]] || printf '%s\n' "$pid" >"$RMQ_PIDFILE"
    else
        rm -f -- "$RMQ_PIDFILE"
        rmq_pick_ports
        rmq_write_files
        # Fresh broker state on every start (also discards whatever a killed
        # earlier run left behind).
        rm -rf -- "$RMQ_DIR/mnesia" "$RMQ_DIR/plugins-expand"
        # Keep the previous run's logs as *.log.1 so failures show this run only.
        for p in "$RMQ_DIR"/log/*.log; do
            [[ -e $p ]] && mv -f -- "$p" "$p.1"
        done
        STARTED_RMQ=1
        epmd_ensure
        log "rabbitmq: starting node $RMQ_NODENAME on 127.0.0.1:$AMQP_PORT (dist $DIST_PORT, epmd $EPMD_PORT) ..."
        : >"$RMQ_STARTUP_LOG"
        (
            rmq_env
            exec setsid /usr/lib/rabbitmq/bin/rabbitmq-server
        ) </dev/null >>"$RMQ_STARTUP_LOG" 2>&1 &
        wrapper=$!
    fi
    # Wait until the AMQP listener accepts connections (also when an already
    # running node is still booting). Listeners open at the end of the boot,
    # after the default user has been created.
    deadline=$((SECONDS + TIMEOUT))
    until pid=$(rmq_pid) && port_open "$AMQP_PORT"; do
        if [[ -n $wrapper ]] && ! pid_alive "$wrapper" && ! rmq_pid >/dev/null; then
            show_tail "$RMQ_STARTUP_LOG"
            show_tail "$RMQ_DIR/log/$RMQ_NODENAME.log"
            die "rabbitmq: node exited during startup"
        fi
        if [[ -z $wrapper ]] && ! rmq_pid >/dev/null; then
            die "rabbitmq: node exited while we were waiting for it; run 'scripts/services.sh start' again"
        fi
        if ((SECONDS >= deadline)); then
            show_tail "$RMQ_STARTUP_LOG"
            show_tail "$RMQ_DIR/log/$RMQ_NODENAME.log"
            die "rabbitmq: not accepting connections on 127.0.0.1:$AMQP_PORT after ${TIMEOUT}s (logs above)"
        fi
        sleep 0.2
    done
    log "rabbitmq: ready on 127.0.0.1:$AMQP_PORT (pid $pid, node $RMQ_NODENAME)"
}

rmq_stop() {
    local pid i
    rmq_setup_vars
    if pid=$(rmq_pid); then
        rmq_adopt_running "$pid"
        printf '%s\n' "$pid" >"$RMQ_PIDFILE"
        log "rabbitmq: stopping node $RMQ_NODENAME (pid $pid) ..."
        # `rabbitmqctl stop <pidfile>` waits for the VM to exit.
        if ! RMQCTL_TIMEOUT=30 rmqctl -q stop "$RMQ_PIDFILE" </dev/null >>"$RMQ_DIR/log/ctl.log" 2>&1; then
            log "rabbitmq: rabbitmqctl stop failed (see $RMQ_DIR/log/ctl.log); sending SIGTERM"
            kill -TERM "$pid" 2>/dev/null || true
        fi
        for ((i = 0; i < 100; i++)); do pid_alive "$pid" || break; sleep 0.2; done
        if pid_alive "$pid"; then
            log "rabbitmq: beam $pid still alive; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 25; i++)); do pid_alive "$pid" || break; sleep 0.2; done
        fi
        pid_alive "$pid" && die "rabbitmq: beam process $pid did not exit"
        log "rabbitmq: stopped"
    else
        log "rabbitmq: not running"
    fi
    rm -f -- "$RMQ_PIDFILE"
    epmd_stop
}

rmq_status() {
    local pid
    rmq_setup_vars
    if pid=$(rmq_pid); then
        rmq_adopt_running "$pid"
        printf 'rabbitmq: running (pid %s, node %s) on 127.0.0.1:%s\n' "$pid" "$RMQ_NODENAME" "$AMQP_PORT"
    else
        printf 'rabbitmq: stopped\n'
        return 1
    fi
}

# ------------------------------------------------------------------- main ---

cmd_start() {
    local t0=$SECONDS
    mkdir -p -- "$SVC_DIR"
    STARTING=1
    ensure_packages
    pg_start
    rmq_start
    STARTING=0
    log "all services ready in $((SECONDS - t0))s"
}

usage() {
    printf 'usage: %s start|stop|status|config|pg-restart [SECONDS]|rabbitmqctl ARGS...\n' "${0##*/}" >&2
    exit 2
}

main() {
    local pid
    if (($# >= 1)) && [[ $1 == rabbitmqctl ]]; then
        shift
        rmq_setup_vars
        if pid=$(rmq_pid); then rmq_adopt_running "$pid"; fi
        rmqctl "$@"
        return
    fi
    if (($# >= 1)) && [[ $1 == pg-restart ]]; then
        (($# <= 2)) || usage
        pg_restart "${2:-0}" >&2
        return
    fi
    (($# == 1)) || usage
    check_port_var HOTLINE_TEST_PG_PORT "$PG_PORT"
    check_port_var HOTLINE_TEST_AMQP_PORT "$AMQP_PORT"
    [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "HOTLINE_TEST_SERVICES_TIMEOUT must be a positive integer"
    # RabbitMQ's scripts/disk monitor do not cope with blanks or quotes in
    # paths (the node hangs during boot), so refuse them up front.
    [[ $SVC_DIR =~ ^/[A-Za-z0-9._/@+,:=~-]+$ ]] ||
        die "state dir '$SVC_DIR' must be an absolute path without blanks/quotes/special characters; set HOTLINE_TEST_SERVICES_DIR"
    case $1 in
    start)
        # Everything but the final export lines goes to stderr.
        cmd_start >&2
        printf 'export HOTLINE_TEST_POSTGRES_URL=postgresql+psycopg://%s:%s@127.0.0.1:%s/%s\n' \
            "$PG_USER" "$PG_PASSWORD" "$PG_PORT" "$PG_DB"
        printf 'export HOTLINE_TEST_AMQP_URL=amqp://%s:%s@127.0.0.1:%s//\n' \
            "$AMQP_USER" "$AMQP_PASSWORD" "$AMQP_PORT"
        ;;
    stop)
        {
            rmq_stop
            pg_stop
        } >&2
        ;;
    config)
        printf 'HOTLINE_TEST_SERVICES_DIR=%s\n' "$SVC_DIR"
        printf 'HOTLINE_TEST_AMQP_NODENAME=%s\n' "${HOTLINE_TEST_AMQP_NODENAME:-hotline-test-$CHECKOUT_ID@localhost}"
        ;;
    status)
        local rc=0
        pg_status || rc=3
        rmq_status || rc=3
        return "$rc"
        ;;
    *) usage ;;
    esac
}

main "$@"
