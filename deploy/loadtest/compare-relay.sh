#!/usr/bin/env bash
# Compare END-TO-END relay throughput of Postfix (relay mode) and towerpost:
#
#   smtp-source --> server (queue, fsync) --> smtp client --> smtp-sink
#
#   compare-relay.sh SCRATCH_DIR [TOWERPOST_BIN]
#
# For each session count (10 50) and each repeat (3), for each server: start a
# fresh smtp-sink on a free loopback port and a fresh server (new, empty
# queue) that relays everything to it; send a small unmeasured warm-up and
# wait until it has been delivered; then start the clock, run accept-bench.sh
# (smtp-source) and wait until the server's queue is empty again; stop the
# clock.  msg/s = MESSAGES / seconds.  Every run is checked: the sink received
# exactly WARMUP+MESSAGES messages, the server logged exactly that many
# status=sent deliveries and no status=deferred/bounced/expired.  towerpost's
# peak RSS (VmHWM) is read right before it is stopped.  For both servers
# the CPU time of all their processes during the measured run (Postfix's
# exited children through the master's cutime/cstime) and the peak RSS and
# PSS summed over their processes (sampled every 0.5 s) go to results.tsv
# (compare.sh reports them).  Runs alternate
# between the servers (P T P T ...).  The Markdown table goes to stdout,
# progress to stderr, raw runs to SCRATCH_DIR/results.tsv.
#
# Environment (defaults in brackets):
#   TOWERPOST_BIN         towerpost binary, started as
#                         "$TOWERPOST_BIN --config FILE serve"               []
#   TOWERPOST_EXTRA_TOML  extra top-level TOML lines for towerpost's config  []
#   SESSIONS_LIST         smtp-source session counts                 [10 50]
#   MESSAGES_<S>          messages per run at S sessions              [5000]
#   SIZE                  payload bytes per message                   [1024]
#   REPEATS               runs per session count (median taken)          [3]
#   WARMUP                unmeasured messages before each run (delivered
#                         before the clock starts)                      [50]
#   POSTFIX_PORT / TOWERPOST_PORT   server ports on 127.0.0.1  [2535 / 2536]
#   SINK_PORT             first port tried for smtp-sink; the first free one
#                         at or above it is used                      [2537]
#   SINK_BACKLOG          smtp-sink listen backlog                     [256]
#   RUN_TIMEOUT           seconds from clock start until the queue must be
#                         empty (smtp-source + delivery), else the run fails
#                                                                     [300]
#   STALL_TIMEOUT         fail the run if the sink receives nothing for this
#                         many seconds while the queue is not empty      [30]
#   DEADLINE              no new run starts after this many seconds     [900]
#   AUTO_SCALE            1 = scale message counts down if a Postfix pilot
#                         predicts the plan would not fit in ~80% of
#                         DEADLINE (a note is printed)                   [1]
#   INTERLEAVE            1 = P T P T ...; 0 = all Postfix runs first    [1]
#   SETTLE                seconds to sleep after "sync" between runs      [1]
#   KEEP_RUNS             1 = keep every run directory (logs, queue, sink
#                         counters); default: only failed runs are kept   [0]
#   ACCEPT_BENCH_RECONNECT  passed to accept-bench.sh                     [0]
#
# Needs root (Postfix instance; smtp-sink runs as "nobody").  All traffic
# goes to 127.0.0.1 only.  See README.md.
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a "." decimal point, plain grep/sort

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd -P)
INSTANCE=$HERE/postfix-instance.sh
BENCH=$HERE/accept-bench.sh
SMTP_SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 || $# -eq 2 ]] || usage "SCRATCH_DIR [TOWERPOST_BIN]"
scratch=$1
TOWERPOST_BIN=${2:-${TOWERPOST_BIN:-}}
SESSIONS_LIST=${SESSIONS_LIST:-10 50}
SIZE=${SIZE:-1024}
REPEATS=${REPEATS:-3}
WARMUP=${WARMUP:-50}
POSTFIX_PORT=${POSTFIX_PORT:-2535}
TOWERPOST_PORT=${TOWERPOST_PORT:-2536}
SINK_PORT=${SINK_PORT:-2537}
SINK_BACKLOG=${SINK_BACKLOG:-256}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
STALL_TIMEOUT=${STALL_TIMEOUT:-30}
DEADLINE=${DEADLINE:-900}
AUTO_SCALE=${AUTO_SCALE:-1}
INTERLEAVE=${INTERLEAVE:-1}
SETTLE=${SETTLE:-1}
KEEP_RUNS=${KEEP_RUNS:-0}
export ACCEPT_BENCH_RECONNECT=${ACCEPT_BENCH_RECONNECT:-0}

require_root "Postfix instance, smtp-sink -u"
require_postfix_tool /usr/sbin/smtp-source smtp-source
require_postfix_tool "$SMTP_SINK"
require_bash5
check_uint_vars "an integer" SIZE REPEATS WARMUP POSTFIX_PORT TOWERPOST_PORT SINK_PORT \
    SINK_BACKLOG RUN_TIMEOUT STALL_TIMEOUT DEADLINE SETTLE
((REPEATS >= 1)) || die "REPEATS must be >= 1"
((RUN_TIMEOUT >= 1 && STALL_TIMEOUT >= 1)) || die "timeouts must be >= 1"
check_ports
[[ -z $TOWERPOST_BIN ]] || resolve_towerpost_bin

# This script's own TOWERPOST_BIN/TOWERPOST_EXTRA_TOML, or a developer's
# TOWERPOST_MESSAGE_SIZE_LIMIT, must not reach towerpost (see lib.sh).
unexport_towerpost_vars

declare -A MSGS
read_message_counts 5000

make_scratch "$scratch"
[[ $scratch != *[[:space:]]* ]] || die "SCRATCH_DIR must not contain whitespace"
scratch_fstype
results=$scratch/results.tsv
printf 'server\tsessions\trun\tmessages\taccept_seconds\tseconds\tmsg_per_s\tsink_sessions\tpeak_rss_kib\tcpu_seconds\tall_peak_rss_kib\tall_peak_pss_kib\n' >"$results"

# --- process bookkeeping, so that an interrupted run leaves nothing behind --
pf_dir=      # running Postfix instance dir, if any
tp_pid=      # running towerpost pid, if any
sink_pids=() # running "timeout ... smtp-sink" pid (at most one)

cleanup() {
    stop_servers
    stop_sinks
}
set_cleanup_traps

# --- smtp-sink -----------------------------------------------------------------
# start_sink RUNDIR PORT: smtp-sink -c writes "sess=N quit=N mesg=N\r" to
# RUNDIR/sink.out every time a message ends (".") or a session ends.  It is
# bounded by timeout(1) in case this script dies without its EXIT trap.
start_sink() {
    local dir=$1 port=$2 i life pid
    life=$((RUN_TIMEOUT + 300))
    timeout --kill-after=5 "$life" "$SMTP_SINK" -c -u nobody \
        "127.0.0.1:$port" "$SINK_BACKLOG" >"$dir/sink.out" 2>"$dir/sink.err" </dev/null &
    pid=$!
    sink_pids=("$pid")
    for ((i = 0; i < 100; i++)); do
        port_busy "$port" && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            stop_sinks # reaps it
            log "smtp-sink exited during start-up: $(head -c 500 "$dir/sink.err")"
            return 1
        fi
        sleep 0.1
    done
    log "smtp-sink did not listen on 127.0.0.1:$port within 10s"
    stop_sinks
    return 1
}

# Last complete counter record of the sink: sets SINK_SESS and SINK_MESG.
sink_counters() {
    local rec
    rec=$(tail -c 256 "$1/sink.out" 2>/dev/null | grep -ao $'sess=[0-9]* quit=[0-9]* mesg=[0-9]*\r' |
        tail -n 1) || true
    if [[ $rec =~ sess=([0-9]+)\ quit=[0-9]+\ mesg=([0-9]+) ]]; then
        SINK_SESS=${BASH_REMATCH[1]}
        SINK_MESG=${BASH_REMATCH[2]}
    else
        SINK_SESS=0
        SINK_MESG=0
    fi
}

# --- servers -------------------------------------------------------------------
# start_<server>_in RUNDIR SINKPORT: start a fresh server relaying to the
# sink, return non-zero on failure.  queue_<server> RUNDIR: print the number
# of queued messages (fails if it cannot tell).  log_<server> RUNDIR: the
# server's mail log.

start_postfix_in() { start_postfix_instance "$1" relay "$2"; }

queue_postfix() {
    # Every message-carrying queue; bounce/defer/trace/flush hold logs only.
    local d qdirs=()
    for d in maildrop incoming active deferred hold; do
        [[ -d $1/queue/$d ]] && qdirs+=("$1/queue/$d")
    done
    ((${#qdirs[@]} > 0)) || return 1
    find "${qdirs[@]}" -type f | wc -l
}

log_postfix() { echo "$1/log/maillog"; }

start_towerpost_in() {
    local dir=$1 sinkport=$2
    towerpost_prepare "$dir" port_busy || return 1
    {
        echo "queue_directory = \"$dir/spool\""
        echo "relayhost = \"[127.0.0.1]:$sinkport\""
        echo "smtpd_forbid_unauth_pipelining = true"
        [[ -z ${TOWERPOST_EXTRA_TOML:-} ]] || printf '%s\n' "$TOWERPOST_EXTRA_TOML"
        towerpost_listener_toml
    } >"$dir/towerpost.toml"
    towerpost_launch "$dir" port_busy --config "$dir/towerpost.toml" serve
}

queue_towerpost() {
    # Via the control socket while the server runs.  Lists every message
    # still stored, including those being delivered.
    local out
    out=$("$TOWERPOST_BIN" --config "$1/towerpost.toml" queue list --json 2>>"$1/queue-list.err") ||
        return 1
    [[ -z $out ]] && { echo 0; return 0; }
    wc -l <<<"$out"
}

log_towerpost() { echo "$1/towerpost.log"; }

# wait_drain SERVER RUNDIR EXPECTED DEADLINE_US: wait until the server's queue
# is empty.  To keep the probe from disturbing the server, the queue is only
# listed once the sink has received EXPECTED messages in total, or when the
# sink has received nothing for a second (once per second then: catches lost
# or bounced mail).  Fails at DEADLINE_US (microseconds since the epoch) or
# after STALL_TIMEOUT seconds without progress at the sink.  Sets DRAIN_INFO
# on failure.
DRAIN_INFO=
wait_drain() {
    local server=$1 dir=$2 expected=$3 deadline=$4
    local t last=-1 last_change last_q=0 q='?'
    last_change=$(now_us)
    while :; do
        sink_counters "$dir"
        t=$(now_us)
        if ((SINK_MESG != last)); then
            last=$SINK_MESG
            last_change=$t
        fi
        if ((SINK_MESG >= expected)) ||
            ((t - last_change >= 1000000 && t - last_q >= 1000000)); then
            last_q=$t
            if q=$("queue_$server" "$dir"); then
                ((q == 0)) && return 0
            else
                q='?'
            fi
        fi
        if ((t >= deadline)); then
            DRAIN_INFO="queue not empty at the deadline ($q queued, sink got $SINK_MESG of $expected)"
            return 1
        fi
        if ((t - last_change >= STALL_TIMEOUT * 1000000)); then
            DRAIN_INFO="delivery stalled for ${STALL_TIMEOUT}s ($q queued, sink got $SINK_MESG of $expected)"
            return 1
        fi
        sleep 0.05
    done
}

# --- one measured run ----------------------------------------------------------
# run_one SERVER SESSIONS MESSAGES RUN -> sets RUN_RATE (msg/s) and RUN_RSS
# (KiB, towerpost only), or fails.  Runs in the main shell (not in $(...)) so
# the EXIT trap sees pf_dir/tp_pid/sink_pid.
RUN_RATE=
RUN_RSS=
run_one() {
    local server=$1 s=$2 m=$3 r=$4 dir port sinkport line t0 t1 secs rate
    local asecs logf sent deferred bounced expired warns rss=- i rc=0 problems=()
    local line='' t0=0 t1=0
    RUN_RSS=
    dir=$scratch/$server-s$s-r$r
    rm -rf "$dir"
    mkdir -p "$dir"
    if [[ $server == postfix ]]; then port=$POSTFIX_PORT; else port=$TOWERPOST_PORT; fi
    logf=$("log_$server" "$dir")

    sinkport=$(free_port "$SINK_PORT") || {
        log "$server sessions=$s run=$r: no free port for smtp-sink at $SINK_PORT..$((SINK_PORT + 99))"
        return 1
    }
    start_sink "$dir" "$sinkport" || {
        log "$server sessions=$s run=$r FAILED: smtp-sink did not start; files kept in $dir"
        return 1
    }
    "start_${server}_in" "$dir" "$sinkport" || {
        stop_sinks
        log "$server sessions=$s run=$r FAILED to start; files kept in $dir"
        return 1
    }

    # Warm-up (process spawn, page cache, Postfix's destination concurrency
    # and connection cache), delivered completely before the clock starts.
    if ((WARMUP > 0)); then
        if ! ACCEPT_BENCH_TIMEOUT=60 "$BENCH" "127.0.0.1:$port" "$s" "$WARMUP" "$SIZE" \
            >/dev/null; then
            problems+=("warm-up: smtp-source failed")
            rc=1
        elif ! wait_drain "$server" "$dir" "$WARMUP" $(($(now_us) + 60000000)); then
            problems+=("warm-up: $DRAIN_INFO")
            rc=1
        fi
    fi

    local cpu0=0 cpu1=0 sampler='' cpu=- mem='- -'
    if ((rc == 0)); then
        # CPU of all the server's processes, and their memory every 0.5 s.
        cpu0=$(cpu_ticks "$server")
        mem_sampler "$server" "$dir/mem.peak" &
        sampler=$!
        t0=$(now_us)
        if ! line=$(ACCEPT_BENCH_TIMEOUT=$RUN_TIMEOUT "$BENCH" "127.0.0.1:$port" \
            "$s" "$m" "$SIZE"); then
            problems+=("smtp-source failed")
            rc=1
        elif ! wait_drain "$server" "$dir" $((WARMUP + m)) $((t0 + RUN_TIMEOUT * 1000000)); then
            problems+=("$DRAIN_INFO")
            rc=1
        fi
        t1=$(now_us)
        cpu1=$(cpu_ticks "$server")
        kill "$sampler" 2>/dev/null || true
        wait "$sampler" 2>/dev/null || true
        cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
        mem=$(cat "$dir/mem.peak" 2>/dev/null) || mem='- -'
    fi

    # Postfix writes its log through postlogd (asynchronous): give the last
    # lines a moment to arrive before the server is stopped.
    for ((i = 0; i < 50; i++)); do
        (($(count 'status=sent' "$logf") >= WARMUP + m)) && break
        ((rc == 0)) || break
        sleep 0.1
    done
    if [[ $server == towerpost && -n $tp_pid && -r /proc/$tp_pid/status ]]; then
        rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$tp_pid/status") || rss=-
        [[ -n $rss ]] || rss=-
    fi
    if [[ $server == postfix ]]; then stop_postfix; else stop_towerpost; fi
    sink_counters "$dir"
    stop_sinks

    # Checks: the sink got everything exactly once, the server logged one
    # successful delivery per message and no deferral or bounce.
    sent=$(count 'status=sent' "$logf")
    deferred=$(count 'status=deferred' "$logf")
    bounced=$(count 'status=bounced' "$logf")
    expired=$(count 'status=expired' "$logf")
    warns=$(show_warnings "$server sessions=$s run=$r" "$logf" '(warning|error|fatal|panic): ')
    ((SINK_MESG == WARMUP + m)) ||
        problems+=("sink received $SINK_MESG messages, expected $((WARMUP + m))")
    ((sent == WARMUP + m)) || problems+=("log has $sent status=sent, expected $((WARMUP + m))")
    ((deferred == 0)) || problems+=("log has $deferred status=deferred")
    ((bounced == 0)) || problems+=("log has $bounced status=bounced")
    ((expired == 0)) || problems+=("log has $expired status=expired")

    if ((${#problems[@]} > 0)); then
        log "$server sessions=$s run=$r FAILED: $(printf '%s; ' "${problems[@]}")files kept in $dir"
        [[ -z $line ]] || log "  (acceptance phase: $line)"
        settle
        return 1
    fi

    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { t = (b - a) / 1e6; if (t <= 0) t = 1e-6; printf "%.3f", t }')
    rate=$(awk -v m="$m" -v t="$secs" 'BEGIN { printf "%.1f", m / t }')
    asecs=${line#*seconds=}
    asecs=${asecs%% *}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$s" "$r" "$m" "$asecs" \
        "$secs" "$rate" "$SINK_SESS" "$rss" "$cpu" ${mem} >>"$results"
    log "$server: sessions=$s messages=$m size=$SIZE seconds=$secs msg_per_s=$rate" \
        "(run $r; accepted in ${asecs}s; sink: $SINK_MESG msgs over $SINK_SESS connections;" \
        "sent=$sent deferred=0 bounced=0 warnings=$warns; CPU ${cpu}s; peak RSS/PSS of all processes $mem KiB$(
            [[ $server == towerpost ]] && echo "; peak RSS ${rss} KiB"
        ))"
    [[ $KEEP_RUNS == 1 ]] || rm -rf "$dir" # queue/log can be large; kept on trouble
    settle
    RUN_RATE=$rate
    RUN_RSS=$rss
}

# measure (lib.sh) collects RATES and RSSMAX; summarize (lib.sh) fills MED.
declare -A MED RATES RSSMAX
failed=0
skipped=0

# --- pilot: scale the plan down if Postfix relays slowly here ---------------------
scale_note=
if [[ $AUTO_SCALE == 1 ]]; then
    first_s=$(tr ' ' '\n' <<<"$SESSIONS_LIST" | grep . | sort -n | head -n 1)
    saved_warmup=$WARMUP
    WARMUP=0
    run_one postfix "$first_s" 300 pilot ||
        die "pilot run against Postfix (300 messages, $first_s sessions) failed;" \
            "see $scratch/postfix-s$first_s-rpilot"
    WARMUP=$saved_warmup
    prate=$RUN_RATE
    log "pilot: Postfix relayed 300 messages at $first_s sessions: $prate msg/s"
    # Assume every run goes at the pilot rate; ~8s of sink/server start,
    # warm-up, stop and settle per run.
    factor=$(plan_scale_factor "$prate" 8)
    if [[ $factor != 1 ]]; then
        scale_messages "$factor"
        scale_note="Message counts were scaled down by a factor of $factor (Postfix pilot: $prate msg/s end-to-end at $first_s sessions) to fit the ${DEADLINE}s budget."
        log "$scale_note"
    fi
fi

log "plan (sessions:messages): $(plan_string) x $REPEATS repeats, size=$SIZE, warm-up=$WARMUP," \
    "reconnect=$ACCEPT_BENCH_RECONNECT, scratch=$scratch ($fstype)"

servers=(postfix)
[[ -z $TOWERPOST_BIN ]] || servers+=(towerpost)
run_plan "${servers[@]}"
for server in "${servers[@]}"; do summarize "$server"; done

# --- report --------------------------------------------------------------------
echo
echo "| sessions | messages | Postfix msg/s (median of $REPEATS) | towerpost msg/s (median of $REPEATS) | ratio (towerpost/Postfix) | towerpost peak RSS (max of runs) |"
echo "|---:|---:|---:|---:|---:|---:|"
for s in $SESSIONS_LIST; do
    p=${MED[postfix,$s]}
    if [[ -n $TOWERPOST_BIN ]]; then
        t=${MED[towerpost,$s]}
        ratio=$(ratio_of "$p" "$t")
        if [[ -n ${RSSMAX[$s]:-} ]]; then
            rss=$(awk -v k="${RSSMAX[$s]}" 'BEGIN { printf "%.1f MiB\n", k / 1024 }')
        else
            rss=n/a
        fi
    else
        t="not run (TOWERPOST_BIN unset)"
        ratio=n/a
        rss=n/a
    fi
    echo "| $s | ${MSGS[$s]} | $p | $t | $ratio | $rss |"
done
echo
echo "End to end: smtp-source -> server -> smtp-sink on 127.0.0.1, clock stopped when" \
    "the server's queue is empty. Payload $SIZE bytes/message, smtp-source" \
    "$(bench_conn_desc), $(nproc) CPUs, queue on $fstype. Raw runs: $results"
print_run_notes

((failed == 0 && skipped == 0))
