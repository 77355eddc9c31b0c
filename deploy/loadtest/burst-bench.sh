#!/usr/bin/env bash
# A burst of idle connections against one or more towerpost binaries: how
# long until all are greeted, the RSS while they are held, and the RSS 15 s
# and 60 s after they have all closed.
#
#   burst-bench.sh SCRATCH_DIR TOWERPOST_BIN...
#
# Each run: a fresh server (smtpd_session_limit = 0, so every connection
# gets a session), idle-conns.py opens COUNT connections from 127.0.0.1
# (at most 200 connects in flight), waits for every greeting, holds them
# HOLD seconds and closes them all.  Runs alternate between the binaries;
# the table shows medians of REPEATS runs.  Postfix is not run: with its
# default process limit it serves 100 of the clients (compare.sh's idle
# step measures that side by side).
#
# Environment (defaults in brackets): COUNT [10000], HOLD [10],
# REPEATS [3], PORT [2626], PYTHON [python3].  Loopback only.
set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

[[ $# -ge 2 ]] || usage "SCRATCH_DIR TOWERPOST_BIN..."
scratch=$1
shift
COUNT=${COUNT:-10000}
HOLD=${HOLD:-10}
REPEATS=${REPEATS:-3}
PORT=${PORT:-2626}
PYTHON=${PYTHON:-python3}
check_uint_vars "a whole number" COUNT HOLD REPEATS PORT
unexport_towerpost_vars # towerpost reads TOWERPOST_* as configuration
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd -P)
pid= clients=

cleanup() {
    [[ -z $clients ]] || kill "$clients" 2>/dev/null || true
    [[ -z $pid ]] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
}
set_cleanup_traps

rss_of() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# run_one BIN DIR: prints "greeted seconds held_kib after15_kib after60_kib".
run_one() {
    local bin=$1 dir=$2 info held a15 a60 i
    rm -rf "$dir"
    mkdir -p "$dir"
    printf 'queue_directory = "%s/spool"\nsmtpd_session_limit = 0\n\n[[listener]]\nname = "smtp"\naddress = "127.0.0.1:%s"\ntls = "none"\n' \
        "$dir" "$PORT" >"$dir/towerpost.toml"
    "$bin" --config "$dir/towerpost.toml" serve >"$dir/towerpost.log" 2>&1 </dev/null &
    pid=$!
    for ((i = 0; i < 300; i++)); do
        port_open "$PORT" && break
        sleep 0.1
    done
    port_open "$PORT" || die "$bin did not listen on 127.0.0.1:$PORT"
    "$PYTHON" "$HERE/idle-conns.py" 127.0.0.1 "$PORT" "$COUNT" "$dir/ready" --hold "$HOLD" &
    clients=$!
    while [[ ! -s $dir/ready ]]; do
        kill -0 "$clients" 2>/dev/null || die "idle-conns.py ended without a report"
        sleep 0.2
    done
    info=$(cat "$dir/ready")
    held=$(rss_of "$pid")
    wait "$clients" || true
    clients=
    sleep 15
    a15=$(rss_of "$pid")
    sleep 45
    a60=$(rss_of "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    log "$bin: $info; RSS held $((held / 1024)) MiB, 15 s after $((a15 / 1024)) MiB, 60 s after $((a60 / 1024)) MiB"
    sed -E 's/.*greeted=([0-9]+).*seconds=([0-9.]+).*/\1 \2/' <<<"$info" | tr '\n' ' '
    echo "$held $a15 $a60"
}

declare -A GREETED SECS HELD A15 A60
for ((r = 1; r <= REPEATS; r++)); do
    n=0
    for bin in "$@"; do
        n=$((n + 1))
        read -r g s h a b < <(run_one "$bin" "$scratch/run-$n-$r")
        GREETED[$n]+="$g " SECS[$n]+="$s " HELD[$n]+="$((h / 1024)) " A15[$n]+="$((a / 1024)) " A60[$n]+="$((b / 1024)) "
    done
done

med() { median "${2:-0}" <<<"$1" || echo n/a; }
echo "| binary | greeted of $COUNT | seconds until all greeted | RSS held (MiB) | RSS 15 s after close | RSS 60 s after close |"
echo "|---|---:|---:|---:|---:|---:|"
n=0
for bin in "$@"; do
    n=$((n + 1))
    echo "| $bin | $(med "${GREETED[$n]}") | $(med "${SECS[$n]}" 2) | $(med "${HELD[$n]}") | $(med "${A15[$n]}") | $(med "${A60[$n]}") |"
done
echo
echo "Medians of $REPEATS runs, $COUNT connections held $HOLD s."
