#!/usr/bin/env bash
# Peak memory while many sessions each send one large message: towerpost
# with the default message_size_limit and with 0 (no limit), and Postfix
# (accept mode) doing the same job, side by side.
#
#   large-bench.sh SCRATCH_DIR TOWERPOST_BIN
#
# Each run starts a fresh server (new, empty queue), sends one small
# warm-up message, takes the idle RSS/PSS (summed over all of the server's
# processes), then has smtp-source send SESSIONS messages of SIZE octets
# over SESSIONS concurrent sessions while lib.sh's sampler records the
# peak every 0.5 s; the peak RSS is the larger of that and the sum of the
# processes' VmHWM (reset after the idle reading), which a short peak
# cannot escape.  The table shows medians over REPEATS runs of the peak
# above idle.
# towerpost parks what it accepts (defer_transports = smtp), Postfix holds
# it: nothing is delivered, so the figure is what receiving costs.
#
# Environment (defaults in brackets):
#   SESSIONS        concurrent sessions, one message each            [50]
#   SIZE            payload octets per message                 [8388608]
#   REPEATS         runs per server and setting (median taken)        [3]
#   LIMITS          towerpost message_size_limit values    [10240000 0]
#   TOWERPOST_EXTRA_TOML  extra top-level TOML lines for towerpost      []
#   POSTFIX_PORT / TOWERPOST_PORT   loopback ports         [2525 / 2526]
#   RUN_TIMEOUT     seconds cap per run                             [300]
#
# Needs root (Postfix instance).  All traffic goes to 127.0.0.1 only.
set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd -P)
INSTANCE=$HERE/postfix-instance.sh
# shellcheck source=lib.sh
. "$HERE/lib.sh"

[[ $# -eq 2 ]] || usage "SCRATCH_DIR TOWERPOST_BIN"
require_root "the Postfix instance"
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
require_postfix_tool "$SMTP_SOURCE" smtp-source
scratch=$1
TOWERPOST_BIN=$2
resolve_towerpost_bin
unexport_towerpost_vars # towerpost reads TOWERPOST_* as configuration
SESSIONS=${SESSIONS:-50}
SIZE=${SIZE:-8388608}
REPEATS=${REPEATS:-3}
LIMITS=${LIMITS:-10240000 0}
POSTFIX_PORT=${POSTFIX_PORT:-2525}
TOWERPOST_PORT=${TOWERPOST_PORT:-2526}
SINK_PORT=${SINK_PORT:-2527}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
check_uint_vars "a whole number" SESSIONS SIZE REPEATS RUN_TIMEOUT
check_ports
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd -P)
pf_dir= tp_pid= sink_pids=() sampler=

cleanup() {
    [[ -z $sampler ]] || kill "$sampler" 2>/dev/null || true
    stop_servers
}
set_cleanup_traps

# start_server SERVER LIMIT DIR: a fresh server on its port.
start_server() {
    local server=$1 limit=$2 dir=$3
    if [[ $server == postfix ]]; then
        start_postfix_instance "$dir" accept
        return
    fi
    towerpost_prepare "$dir" port_busy || return 1
    {
        echo "queue_directory = \"$dir/spool\""
        echo "message_size_limit = $limit"
        echo 'defer_transports = ["smtp"]'
        [[ -z ${TOWERPOST_EXTRA_TOML:-} ]] || printf '%s\n' "$TOWERPOST_EXTRA_TOML"
        towerpost_listener_toml
    } >"$dir/towerpost.toml"
    towerpost_launch "$dir" port_busy --config "$dir/towerpost.toml" serve
}

port_of() { [[ $1 == postfix ]] && echo "$POSTFIX_PORT" || echo "$TOWERPOST_PORT"; }

# run_one SERVER LIMIT R: prints "idle_rss idle_pss peak_rss peak_pss ms
# hwm" (memory in KiB; hwm: the processes' VmHWM summed).
run_one() {
    local server=$1 limit=$2 r=$3 dir port idle peak start end
    dir=$scratch/$server-$limit-$r
    rm -rf "$dir"
    mkdir -p "$dir"
    start_server "$server" "$limit" "$dir" || return 1
    port=$(port_of "$server")
    timeout 60 "$SMTP_SOURCE" -c -m 1 -s 1 -f a@example.test -t r@big.test \
        "127.0.0.1:$port" >/dev/null 2>&1 </dev/null || {
        log "$server: warm-up failed"
        stop_servers
        return 1
    }
    sleep 2
    idle=$(mem_kib "$server")
    # Reset each process's peak RSS (VmHWM) to its present size: the
    # sampler may miss a short peak, VmHWM does not.
    for pid in $(server_pids "$server"); do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
    mem_sampler "$server" "$dir/peak" &
    sampler=$!
    start=$(now_us)
    if ! timeout "$RUN_TIMEOUT" "$SMTP_SOURCE" -m "$SESSIONS" -s "$SESSIONS" -l "$SIZE" \
        -f a@example.test -t r@big.test "127.0.0.1:$port" >"$dir/smtp-source.log" 2>&1 </dev/null; then
        log "$server: smtp-source failed; see $dir/smtp-source.log"
        kill "$sampler" 2>/dev/null || true
        sampler=
        stop_servers
        return 1
    fi
    end=$(now_us)
    sleep 1 # one more sample after the last 250
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    sampler=
    peak=$(cat "$dir/peak")
    hwm=0
    for pid in $(server_pids "$server"); do
        h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
        hwm=$((hwm + ${h:-0}))
    done
    stop_servers
    echo "$idle $peak $(((end - start) / 1000)) $hwm"
}

declare -A ABOVE_RSS ABOVE_PSS SECS
settings=("postfix:default")
for l in $LIMITS; do settings+=("towerpost:$l"); done
for ((r = 1; r <= REPEATS; r++)); do
    for s in "${settings[@]}"; do
        server=${s%%:*} limit=${s#*:}
        log "$server message_size_limit=$limit run $r/$REPEATS"
        if out=$(run_one "$server" "$limit" "$r"); then
            read -r ir ip pr pp ms hwm <<<"$out"
            ((hwm > pr)) && pr=$hwm
            ABOVE_RSS[$s]+="$(((pr - ir) / 1024)) "
            ABOVE_PSS[$s]+="$(((pp - ip) / 1024)) "
            SECS[$s]+="$ms "
            log "  idle RSS $((ir / 1024)) MiB, peak RSS $((pr / 1024)) MiB, PSS $((ip / 1024)) -> $((pp / 1024)) MiB, ${ms} ms"
        fi
    done
done

commit=$(cd "$HERE" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "| server | message_size_limit | peak RSS above idle (MiB) | peak PSS above idle (MiB) | time for all (ms) |"
echo "|---|---:|---:|---:|---:|"
for s in "${settings[@]}"; do
    server=${s%%:*} limit=${s#*:}
    [[ $server == postfix ]] && limit="10240000 (Postfix default)"
    med() { median 0 <<<"$1" || echo n/a; }
    echo "| $server | $limit | $(med "${ABOVE_RSS[$s]:-}") | $(med "${ABOVE_PSS[$s]:-}") | $(med "${SECS[$s]:-}") |"
done
echo
echo "$SESSIONS sessions × one $SIZE-octet message each, medians of $REPEATS runs, towerpost at $commit."
