#!/usr/bin/env bash
# Compare SMTP acceptance throughput of Postfix (accept mode) and towerpost.
#
#   compare-accept.sh SCRATCH_DIR [TOWERPOST_BIN]
#
# For each session count (1 10 50) it starts a fresh server (new, empty queue
# directory every run), sends a small unmeasured warm-up, measures one
# accept-bench.sh run, stops the server, and repeats that REPEATS (3) times;
# the table shows the median msg/s per session count.  towerpost is measured
# only if TOWERPOST_BIN is set (env or 2nd argument); its runs alternate with
# the Postfix runs unless INTERLEAVE=0.  The Markdown table goes to stdout,
# progress to stderr, raw runs to SCRATCH_DIR/results.tsv.
#
# Environment (defaults in brackets):
#   TOWERPOST_BIN         towerpost binary, started as
#                         "$TOWERPOST_BIN serve --config FILE"            []
#   TOWERPOST_EXTRA_TOML  extra top-level TOML lines for towerpost's config []
#   SESSIONS_LIST         session counts                             [1 10 50]
#   MESSAGES_<S>          messages per run at S sessions
#                         [MESSAGES_1=2000, others 10000]
#   SIZE                  payload bytes per message                    [1024]
#   REPEATS               runs per session count (median taken)           [3]
#   WARMUP                unmeasured messages before each run            [50]
#   POSTFIX_PORT / TOWERPOST_PORT   loopback ports              [2525 / 2526]
#   RUN_TIMEOUT           seconds cap per measured run                  [120]
#   DEADLINE              no new run starts after this many seconds     [600]
#   AUTO_SCALE            1 = scale message counts down if a Postfix pilot
#                         predicts the plan would not fit in ~80% of
#                         DEADLINE (a note is printed)                   [1]
#   INTERLEAVE            1 = alternate servers run by run (P T P T ...);
#                         0 = all Postfix runs, then all towerpost runs  [1]
#   SETTLE                seconds to sleep after "sync" between runs      [1]
#   ACCEPT_BENCH_RECONNECT  passed to accept-bench.sh (1 = new connection per
#                         message; default: one connection per session)
#
# Needs root (Postfix instance).  All traffic goes to 127.0.0.1 only.
set -euo pipefail

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd -P)
INSTANCE=$HERE/postfix-instance.sh
BENCH=$HERE/accept-bench.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 || $# -eq 2 ]] || usage "SCRATCH_DIR [TOWERPOST_BIN]"
scratch=$1
TOWERPOST_BIN=${2:-${TOWERPOST_BIN:-}}
SESSIONS_LIST=${SESSIONS_LIST:-1 10 50}
SIZE=${SIZE:-1024}
REPEATS=${REPEATS:-3}
WARMUP=${WARMUP:-50}
POSTFIX_PORT=${POSTFIX_PORT:-2525}
TOWERPOST_PORT=${TOWERPOST_PORT:-2526}
RUN_TIMEOUT=${RUN_TIMEOUT:-120}
DEADLINE=${DEADLINE:-600}
AUTO_SCALE=${AUTO_SCALE:-1}
INTERLEAVE=${INTERLEAVE:-1}
SETTLE=${SETTLE:-1}
export ACCEPT_BENCH_RECONNECT=${ACCEPT_BENCH_RECONNECT:-0}

require_root "Postfix instance"
require_postfix_tool /usr/sbin/smtp-source smtp-source
check_uint_vars "an integer" SIZE REPEATS WARMUP POSTFIX_PORT TOWERPOST_PORT RUN_TIMEOUT DEADLINE SETTLE
((REPEATS >= 1)) || die "REPEATS must be >= 1"
[[ -z $TOWERPOST_BIN ]] || resolve_towerpost_bin

# This script's own TOWERPOST_BIN/TOWERPOST_EXTRA_TOML must not reach
# towerpost (see lib.sh).
unexport_towerpost_vars

declare -A MSGS
read_message_counts 10000 2000

make_scratch "$scratch"
scratch_fstype
results=$scratch/results.tsv
printf 'server\tsessions\trun\tmessages\tseconds\tmsg_per_s\n' >"$results"

# --- process bookkeeping, so that an interrupted run leaves nothing behind --
pf_dir= # running Postfix instance dir, if any
tp_pid= # running towerpost pid, if any

cleanup() { stop_servers; }
set_cleanup_traps

# --- servers -----------------------------------------------------------------
# start_<server> RUNDIR: start a fresh server, print nothing, return non-zero
# on failure.  stop_<server>.  count_<server> RUNDIR: stored-message count.

start_postfix_in() {
    "$INSTANCE" start "$1" "$POSTFIX_PORT" accept >/dev/null || return 1
    pf_dir=$1
}

count_postfix() {
    find "$1/queue/hold" "$1/queue/incoming" -type f | wc -l
}

start_towerpost_in() {
    local dir=$1
    towerpost_prepare "$dir" port_open || return 1
    {
        echo "queue_directory = \"$dir/spool\""
        echo "smtpd_forbid_unauth_pipelining = true"
        [[ -z ${TOWERPOST_EXTRA_TOML:-} ]] || printf '%s\n' "$TOWERPOST_EXTRA_TOML"
        towerpost_listener_toml
    } >"$dir/towerpost.toml"
    towerpost_launch "$dir" port_open serve --config "$dir/towerpost.toml"
}

count_towerpost() {
    # Shard files hold many messages each: ask towerpost (it reads the queue
    # files directly once the server has stopped).
    "$TOWERPOST_BIN" --config "$1/towerpost.toml" queue list --json | wc -l
}

# --- one measured run ----------------------------------------------------------
# run_one SERVER SESSIONS MESSAGES RUN -> sets RUN_RATE (msg/s), or fails.
# Runs in the main shell (not in $(...)) so the EXIT trap sees pf_dir/tp_pid.
RUN_RATE=
run_one() {
    local server=$1 s=$2 m=$3 r=$4 dir port line rate secs stored keep rc=0
    dir=$scratch/$server-s$s-r$r
    rm -rf "$dir"
    mkdir -p "$dir"
    if [[ $server == postfix ]]; then
        port=$POSTFIX_PORT
        start_postfix_in "$dir" || {
            log "postfix sessions=$s run=$r FAILED to start; files kept in $dir"
            return 1
        }
    else
        port=$TOWERPOST_PORT
        start_towerpost_in "$dir" || {
            log "towerpost sessions=$s run=$r FAILED to start; files kept in $dir"
            return 1
        }
    fi
    if ((WARMUP > 0)); then
        ACCEPT_BENCH_TIMEOUT=60 "$BENCH" "127.0.0.1:$port" "$s" "$WARMUP" "$SIZE" \
            >/dev/null || rc=1
    fi
    if ((rc == 0)); then
        line=$(ACCEPT_BENCH_TIMEOUT=$RUN_TIMEOUT "$BENCH" "127.0.0.1:$port" \
            "$s" "$m" "$SIZE") || rc=1
    fi
    if [[ $server == postfix ]]; then stop_postfix; else stop_towerpost; fi
    if ((rc != 0)); then
        log "$server sessions=$s run=$r FAILED; files kept in $dir"
        return 1
    fi
    stored=$("count_$server" "$dir")
    keep=0
    if ((stored != m + WARMUP)); then
        log "WARNING: $server stored $stored messages, expected" \
            "$((m + WARMUP)); files kept in $dir"
        keep=1
    fi
    rate=${line##*msg_per_s=}
    secs=${line#*seconds=}
    secs=${secs%% *}
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$s" "$r" "$m" "$secs" "$rate" \
        >>"$results"
    log "$server: $line (run $r, $stored messages stored)"
    ((keep)) || rm -rf "$dir" # the queue can be large; keep it only on trouble
    settle
    RUN_RATE=$rate
}

# measure (lib.sh) collects RATES; summarize (lib.sh) fills MED.
declare -A MED RATES
failed=0
skipped=0

# --- pilot: scale the plan down if Postfix is slow here -------------------------
scale_note=
if [[ $AUTO_SCALE == 1 ]]; then
    pilot_dir=$scratch/pilot
    rm -rf "$pilot_dir"
    start_postfix_in "$pilot_dir" || die "cannot start Postfix instance"
    pilot=$(ACCEPT_BENCH_TIMEOUT=60 "$BENCH" "127.0.0.1:$POSTFIX_PORT" 1 300 "$SIZE") ||
        die "pilot run against Postfix failed; see $pilot_dir/log/maillog"
    stop_postfix
    rm -rf "$pilot_dir"
    log "pilot: $pilot"
    prate=${pilot##*msg_per_s=}
    # Conservative: assume every run goes at the 1-session pilot rate; ~4s of
    # start/stop/warm-up/settle overhead per run.
    factor=$(plan_scale_factor "$prate" 4)
    if [[ $factor != 1 ]]; then
        scale_messages "$factor"
        scale_note="Message counts were scaled down by a factor of $factor (Postfix pilot: $prate msg/s at 1 session) to fit the ${DEADLINE}s budget."
        log "$scale_note"
    fi
fi

log "plan (sessions:messages): $(plan_string) x $REPEATS repeats, size=$SIZE," \
    "reconnect=$ACCEPT_BENCH_RECONNECT, scratch=$scratch ($fstype)"

servers=(postfix)
[[ -z $TOWERPOST_BIN ]] || servers+=(towerpost)
run_plan "${servers[@]}"
for server in "${servers[@]}"; do summarize "$server"; done

# --- report --------------------------------------------------------------------
echo
echo "| sessions | messages | Postfix msg/s (median of $REPEATS) | towerpost msg/s (median of $REPEATS) | ratio (towerpost/Postfix) |"
echo "|---:|---:|---:|---:|---:|"
for s in $SESSIONS_LIST; do
    p=${MED[postfix,$s]}
    if [[ -n $TOWERPOST_BIN ]]; then
        t=${MED[towerpost,$s]}
        ratio=$(ratio_of "$p" "$t")
    else
        t="not run (TOWERPOST_BIN unset)"
        ratio=n/a
    fi
    echo "| $s | ${MSGS[$s]} | $p | $t | $ratio |"
done
echo
echo "Payload $SIZE bytes/message, smtp-source $(bench_conn_desc)," \
    "$(nproc) CPUs, queue on $fstype. Raw runs: $results"
print_run_notes

((failed == 0 && skipped == 0))
