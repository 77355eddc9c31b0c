#!/usr/bin/env bash
# A large parked queue: start-up, memory, listing and ETRN with LARGE
# deferred messages, against the same with SMALL.
#
#   million-bench.sh SCRATCH_DIR TOWERPOST_BIN FILL_QUEUE_BIN
#
# FILL_QUEUE_BIN is the queue crate's example (cargo build --release -p
# towerpost-queue --example fill_queue; target/release/examples/fill_queue).
# For each queue size it fills a fresh spool with that many parked 1 KiB
# messages for DOMAINS destinations (x@d0.test, x@d1.test, ...; deferred,
# due in ten days), then runs REPEATS rounds, each:
#   1. adds SITE_MESSAGES parked messages for customer.test (server stopped);
#   2. starts towerpost and takes the time until its first SMTP greeting,
#      the RSS then, its peak (VmHWM) and the RSS 10 s later;
#   3. `queue list --json` through the running server: seconds, messages
#      listed, the CLI's peak RSS, the server's peak RSS during it (sampled
#      every 0.1 s);
#   4. `queue shape` likewise;
#   5. ETRN customer.test (flush-helper.py etrn): milliseconds from the
#      command until the sink (flush-helper.py sink) has all SITE_MESSAGES;
#   6. reads the server's peak RSS over the round (VmHWM) and stops it.
# The table shows medians of the rounds.  Postfix is not run: filling it
# with a million messages takes its own pickup path (smtp-source at about
# 1,000 msg/s, 17 minutes a fill), and its queue manager then walks the
# deferred queue by itself; compare-flush.sh measures ETRN side by side on
# queues both can be given quickly.
#
# The page cache is warm (the fill has just written the spool): dropping it
# needs privileges a CI machine may not give.
#
# Environment (defaults in brackets): SIZES ["2000 1000000"], DOMAINS
# [1000], SITE_MESSAGES [100], REPEATS [3], PORT [2598], SINK_PORT [2599],
# SETTLE [2] (seconds of quiet after sync before each start), PYTHON
# [python3].  Loopback only.
set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

[[ $# -eq 3 ]] || usage "SCRATCH_DIR TOWERPOST_BIN FILL_QUEUE_BIN"
SIZES=${SIZES:-2000 1000000}
DOMAINS=${DOMAINS:-1000}
SITE_MESSAGES=${SITE_MESSAGES:-100}
REPEATS=${REPEATS:-3}
PORT=${PORT:-2598}
SINK_PORT=${SINK_PORT:-2599}
PYTHON=${PYTHON:-python3}
SETTLE=${SETTLE:-2}
check_uint_vars "a whole number" DOMAINS SITE_MESSAGES REPEATS PORT SINK_PORT SETTLE
for size in $SIZES; do [[ $size =~ ^[0-9]+$ ]] || die "bad size in SIZES: $size"; done
require_bash5
command -v /usr/bin/time >/dev/null || die "/usr/bin/time missing (apt-get install time)"
unexport_towerpost_vars # towerpost reads TOWERPOST_* as configuration
make_scratch "$1"
scratch_fstype
TOWERPOST_BIN=$2
resolve_towerpost_bin
FILL=$3
[[ -x $FILL ]] || die "not an executable: $FILL"
HELPER=$HERE/flush-helper.py
TOWERPOST_PORT=$PORT
tp_pid= sink_pids=() sampler=

cleanup() {
    [[ -z $sampler ]] || kill "$sampler" 2>/dev/null || true
    stop_towerpost
    stop_sinks
}
set_cleanup_traps

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# peak_rss_while PID CMD...: run CMD (die if it fails); write "seconds
# peak_kib_of_PID" to $dir/peak, the peak sampled every 0.1 s from just
# before CMD starts.
peak_rss_while() {
    local pid=$1 out=$dir/peak.rss t0 t1
    shift
    status_kib "$pid" VmRSS >"$out"
    (
        peak=$(cat "$out")
        while r=$(status_kib "$pid" VmRSS 2>/dev/null) && [[ -n $r ]]; do
            if ((r > peak)); then
                peak=$r
                echo "$peak" >"$out"
            fi
            sleep 0.1
        done
    ) &
    sampler=$!
    t0=$(now_us)
    "$@" || die "$* failed"
    t1=$(now_us)
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    sampler=
    awk -v a="$t0" -v b="$t1" -v p="$(cat "$out")" \
        'BEGIN { printf "%.2f %d\n", (b - a) / 1e6, p }' >"$dir/peak"
}

# greeted_after T0_US: wait (up to 120 s) for the first greeting on PORT;
# print the seconds since T0_US.
greeted_after() {
    local t0=$1 line i
    for ((i = 0; i < 1200; i++)); do
        if { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null; then
            if read -r -t 120 line <&3 && [[ $line == 220* ]]; then
                printf 'QUIT\r\n' >&3 || true
                exec 3<&-
                awk -v a="$t0" -v b="$(now_us)" 'BEGIN { printf "%.2f\n", (b - a) / 1e6 }'
                return 0
            fi
            exec 3<&-
        fi
        kill -0 "$tp_pid" 2>/dev/null || die "towerpost exited during start-up (see $dir/towerpost.log)"
        sleep 0.1
    done
    die "no greeting on 127.0.0.1:$PORT within 120 s"
}

cli() { "$TOWERPOST_BIN" --config "$dir/towerpost.toml" "$@"; }

# listed CMD...: run `towerpost CMD...` with its stdout counted; writes
# "lines cli_peak_kib" to $dir/listed.
listed() {
    local lines
    lines=$(/usr/bin/time -f '%M' -o "$dir/cli.time" "$TOWERPOST_BIN" --config "$dir/towerpost.toml" "$@" |
        wc -l)
    echo "$lines $(tail -n 1 "$dir/cli.time")" >"$dir/listed"
}

declare -A R
sink_out=$scratch/sink.out
port_busy "$SINK_PORT" && die "127.0.0.1:$SINK_PORT already in use"
port_busy "$PORT" && die "127.0.0.1:$PORT already in use"
timeout 3600 "$PYTHON" "$HELPER" sink "$SINK_PORT" >"$sink_out" &
sink_pids+=($!)
for ((i = 0; i < 100; i++)); do grep -q '^listening' "$sink_out" 2>/dev/null && break; sleep 0.1; done

for size in $SIZES; do
    dir=$scratch/queue-$size
    rm -rf "$dir"
    mkdir -p "$dir"
    {
        echo "queue_directory = \"$dir/spool\""
        echo 'relay_domains = ["customer.test"]'
        echo 'fast_flush_domains = ["customer.test"]'
        echo 'defer_transports = ["etrn-only"]'
        echo
        echo '[transport.etrn-only]'
        echo 'type = "smtp"'
        echo
        echo '[transport_maps]'
        echo "\"customer.test\" = \"etrn-only:[127.0.0.1]:$SINK_PORT\""
        towerpost_listener_toml
    } >"$dir/towerpost.toml"
    shards=$(cli config show queue_shard_count | awk '{ print $3 }')
    log "filling $dir/spool with $size parked messages for $DOMAINS domains ($shards shards)"
    "$FILL" "$dir/spool" "$shards" "$size" "$DOMAINS" >&2
    for ((r = 1; r <= REPEATS; r++)); do
        "$FILL" "$dir/spool" "$shards" 0 1 customer.test "$SITE_MESSAGES" >/dev/null
        settle
        t0=$(now_us)
        "$TOWERPOST_BIN" --config "$dir/towerpost.toml" serve >"$dir/towerpost.log" 2>&1 </dev/null &
        tp_pid=$!
        start_s=$(greeted_after "$t0")
        rss0=$(status_kib "$tp_pid" VmRSS)
        hwm0=$(status_kib "$tp_pid" VmHWM)
        sleep 10
        rss10=$(status_kib "$tp_pid" VmRSS)

        peak_rss_while "$tp_pid" listed queue list --json
        read -r list_s list_srv <"$dir/peak"
        read -r list_n list_cli <"$dir/listed"
        peak_rss_while "$tp_pid" listed queue shape
        read -r shape_s shape_srv <"$dir/peak"
        read -r _ shape_cli <"$dir/listed"

        base=$(count '^msg ' "$sink_out")
        line=$("$PYTHON" "$HELPER" etrn "$PORT" customer.test 30) || die "ETRN failed: $line"
        [[ $line =~ ^t0=([0-9]+)\ t1=([0-9]+)\ reply=(.*)$ ]] || die "bad ETRN output: $line"
        et0=${BASH_REMATCH[1]}
        [[ ${BASH_REMATCH[3]} == "250 Queuing started" ]] || die "ETRN reply: ${BASH_REMATCH[3]}"
        for ((i = 0; ; i++)); do
            (($(count '^msg ' "$sink_out") >= base + SITE_MESSAGES)) && break
            ((i < 3000)) || die "only $(($(count '^msg ' "$sink_out") - base)) of $SITE_MESSAGES delivered within 60 s"
            sleep 0.02
        done
        last=$(awk -v n=$((base + SITE_MESSAGES)) '/^msg / { if (++c == n) { print $2; exit } }' "$sink_out")
        etrn_ms=$(awk -v a="$et0" -v b="$last" 'BEGIN { printf "%.1f\n", (b - a) / 1e6 }')
        hwm_end=$(status_kib "$tp_pid" VmHWM)
        stop_towerpost

        log "size $size round $r: greeted after ${start_s}s, RSS $((rss0 / 1024)) MiB (peak $((hwm0 / 1024)), $((hwm_end / 1024)) over the round), 10 s later $((rss10 / 1024)) MiB;" \
            "list ${list_s}s of $list_n, CLI $((list_cli / 1024)) MiB, server peak $((list_srv / 1024)) MiB;" \
            "shape ${shape_s}s, CLI $((shape_cli / 1024)) MiB, server peak $((shape_srv / 1024)) MiB; ETRN ${etrn_ms} ms"
        ((list_n == size + SITE_MESSAGES)) || die "queue list showed $list_n messages, expected $((size + SITE_MESSAGES))"
        R[$size,start]+="$start_s " R[$size,rss0]+="$((rss0 / 1024)) " R[$size,hwm0]+="$((hwm0 / 1024)) "
        R[$size,rss10]+="$((rss10 / 1024)) " R[$size,list]+="$list_s " R[$size,listcli]+="$((list_cli / 1024)) "
        R[$size,listsrv]+="$((list_srv / 1024)) " R[$size,shape]+="$shape_s " R[$size,shapecli]+="$((shape_cli / 1024)) "
        R[$size,shapesrv]+="$((shape_srv / 1024)) " R[$size,etrn]+="$etrn_ms "
        R[$size,hwmend]+="$((hwm_end / 1024)) "
    done
    du -sh "$dir/spool" >&2
    rm -rf "$dir/spool"
done

med() { median "${2:-0}" <<<"$1"; }
maxof() { tr ' ' '\n' | grep . | sort -g | tail -n 1; }
echo "| parked messages | start until first greeting (s) | RSS at greeting / peak (MiB) | peak over the round, median / max of rounds (MiB) | RSS 10 s later (MiB) | queue list --json (s) | its CLI peak RSS (MiB) | server peak RSS during it (MiB) | queue shape (s) | its CLI peak RSS (MiB) | server peak RSS during it (MiB) | ETRN to $SITE_MESSAGES delivered (ms) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for size in $SIZES; do
    total=$((size + SITE_MESSAGES))
    echo "| $total | $(med "${R[$size,start]}" 2) | $(med "${R[$size,rss0]}") / $(med "${R[$size,hwm0]}") | $(med "${R[$size,hwmend]}") / $(maxof <<<"${R[$size,hwmend]}") | $(med "${R[$size,rss10]}") | $(med "${R[$size,list]}" 2) | $(med "${R[$size,listcli]}") | $(med "${R[$size,listsrv]}") | $(med "${R[$size,shape]}" 2) | $(med "${R[$size,shapecli]}") | $(med "${R[$size,shapesrv]}") | $(med "${R[$size,etrn]}") |"
done
echo
echo "Medians of $REPEATS rounds; $DOMAINS destinations; $SITE_MESSAGES of the parked messages for customer.test; $TOWERPOST_BIN; scripts at commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?')."
