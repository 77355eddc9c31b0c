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

die() {
    echo "$PROG: $*" >&2
    exit 1
}
log() { echo "$PROG: $*" >&2; }

[[ $# -eq 1 || $# -eq 2 ]] || {
    echo "usage: $PROG SCRATCH_DIR [TOWERPOST_BIN]" >&2
    exit 2
}
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

[[ $(id -u) -eq 0 ]] || die "must run as root (Postfix instance)"
[[ -x /usr/sbin/smtp-source ]] || die "smtp-source missing (apt-get install postfix)"
for v in SIZE REPEATS WARMUP POSTFIX_PORT TOWERPOST_PORT RUN_TIMEOUT DEADLINE SETTLE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be an integer: ${!v}"
done
((REPEATS >= 1)) || die "REPEATS must be >= 1"
if [[ -n $TOWERPOST_BIN ]]; then
    if [[ $TOWERPOST_BIN != */* ]]; then # bare name: look it up in PATH
        TOWERPOST_BIN=$(command -v "$TOWERPOST_BIN") ||
            die "TOWERPOST_BIN not found in PATH"
    fi
    [[ -f $TOWERPOST_BIN && -x $TOWERPOST_BIN ]] ||
        die "TOWERPOST_BIN is not an executable file: $TOWERPOST_BIN"
    TOWERPOST_BIN=$(cd "$(dirname "$TOWERPOST_BIN")" && pwd -P)/${TOWERPOST_BIN##*/}
fi

# towerpost reads every TOWERPOST_* environment variable (any case) as a
# configuration key and refuses unknown ones ("unknown key 'bin'"), so this
# script's own TOWERPOST_BIN/TOWERPOST_EXTRA_TOML must not reach it: keep
# them as shell variables but stop exporting them.
while read -r v; do
    # shellcheck disable=SC2163 # un-export the variable named by $v
    [[ -n $v ]] && export -n "$v"
done < <(compgen -e | grep -i '^towerpost_' || true)

declare -A MSGS
for s in $SESSIONS_LIST; do
    if ! [[ $s =~ ^[0-9]+$ ]] || ((s < 1)); then die "bad session count: $s"; fi
    var=MESSAGES_$s
    default=10000
    ((s == 1)) && default=2000
    MSGS[$s]=${!var:-$default}
    if ! [[ ${MSGS[$s]} =~ ^[0-9]+$ ]] || ((MSGS[$s] < 1)); then die "bad $var"; fi
done

mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd -P)
fstype=$(findmnt -n -o FSTYPE -T "$scratch" 2>/dev/null || stat -f -c %T "$scratch")
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
    log "WARNING: $scratch is on $fstype; fsync is free there, results are not" \
        "representative of a disk-backed queue"
fi
results=$scratch/results.tsv
printf 'server\tsessions\trun\tmessages\tseconds\tmsg_per_s\n' >"$results"

# --- process bookkeeping, so that an interrupted run leaves nothing behind --
pf_dir=         # running Postfix instance dir, if any
tp_pid=         # running towerpost pid, if any

port_open() {
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

stop_towerpost() {
    local i
    [[ -n $tp_pid ]] || return 0
    kill -TERM "$tp_pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$tp_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$tp_pid" 2>/dev/null; then
        log "towerpost (pid $tp_pid) ignored SIGTERM for 30s; sending SIGKILL"
        kill -KILL "$tp_pid" 2>/dev/null || true
    fi
    wait "$tp_pid" 2>/dev/null || true
    tp_pid=
}

stop_postfix() {
    [[ -n $pf_dir ]] || return 0
    "$INSTANCE" stop "$pf_dir" >/dev/null || log "stopping Postfix in $pf_dir failed"
    pf_dir=
}

cleanup() {
    stop_towerpost
    stop_postfix
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
    local dir=$1 i
    mkdir -p "$dir/spool"
    port_open "$TOWERPOST_PORT" && {
        log "127.0.0.1:$TOWERPOST_PORT already in use"
        return 1
    }
    # Top-level keys must come before the first [[listener]] table, or TOML
    # would put them inside it.
    {
        echo "queue_directory = \"$dir/spool\""
        echo "smtpd_forbid_unauth_pipelining = true"
        [[ -z ${TOWERPOST_EXTRA_TOML:-} ]] || printf '%s\n' "$TOWERPOST_EXTRA_TOML"
        echo
        echo "[[listener]]"
        echo "name = \"smtp\""
        echo "address = \"127.0.0.1:$TOWERPOST_PORT\""
        echo "tls = \"none\""
    } >"$dir/towerpost.toml"
    "$TOWERPOST_BIN" serve --config "$dir/towerpost.toml" \
        >"$dir/towerpost.log" 2>&1 </dev/null &
    tp_pid=$!
    for ((i = 0; i < 300; i++)); do
        port_open "$TOWERPOST_PORT" && return 0
        if ! kill -0 "$tp_pid" 2>/dev/null; then
            wait "$tp_pid" 2>/dev/null || true
            tp_pid=
            log "towerpost exited during start-up; log:"
            tail -n 20 "$dir/towerpost.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    log "towerpost did not listen on 127.0.0.1:$TOWERPOST_PORT within 30s"
    tail -n 20 "$dir/towerpost.log" >&2 || true
    stop_towerpost
    return 1
}

count_towerpost() {
    # Shard files hold many messages each: ask towerpost (it reads the queue
    # files directly once the server has stopped).
    "$TOWERPOST_BIN" --config "$1/towerpost.toml" queue list --json | wc -l
}

# Flush dirty data (e.g. the deleted queue) so it is not written back during
# the next measurement.
settle() {
    sync
    sleep "$SETTLE"
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

median() {
    tr ' ' '\n' | grep . | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) exit 1
            if (NR % 2) printf "%.1f\n", v[(NR + 1) / 2]
            else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

declare -A MED RATES
failed=0
skipped=0

# One measured run of SERVER at S sessions, repeat R; collects the rate.
measure() {
    local server=$1 s=$2 r=$3
    if ((SECONDS >= DEADLINE)); then
        log "deadline of ${DEADLINE}s reached; skipping $server sessions=$s run=$r"
        skipped=1
        return 0
    fi
    if run_one "$server" "$s" "${MSGS[$s]}" "$r"; then
        RATES[$server,$s]+="$RUN_RATE "
    else
        failed=1
    fi
}

summarize() {
    local server=$1 s rates
    for s in $SESSIONS_LIST; do
        rates=${RATES[$server,$s]:-}
        if [[ -n $rates ]]; then
            MED[$server,$s]=$(median <<<"$rates")
            (($(wc -w <<<"$rates") == REPEATS)) ||
                MED[$server,$s]="${MED[$server,$s]}*"
        else
            MED[$server,$s]=n/a
        fi
    done
}

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
    total=0
    for s in $SESSIONS_LIST; do total=$((total + MSGS[$s])); done
    nserv=1
    [[ -z $TOWERPOST_BIN ]] || nserv=2
    nsess=$(wc -w <<<"$SESSIONS_LIST")
    # Conservative: assume every run goes at the 1-session pilot rate; ~4s of
    # start/stop/warm-up/settle overhead per run.
    factor=$(awk -v t="$total" -v r="$REPEATS" -v n="$nserv" -v p="$prate" \
        -v k="$nsess" -v d="$DEADLINE" -v sec="$SECONDS" 'BEGIN {
            est = n * r * (t / p + 4 * k)
            if (est <= 0.8 * d - sec) { print 1; exit }
            f = (0.8 * d - sec - n * r * 4 * k) / (n * r * t / p)
            if (f < 0.01) f = 0.01
            printf "%.4f\n", f
        }')
    if [[ $factor != 1 ]]; then
        for s in $SESSIONS_LIST; do
            m=$(awk -v m="${MSGS[$s]}" -v f="$factor" 'BEGIN {
                v = int(m * f); if (v < 100) v = 100; print v }')
            MSGS[$s]=$m
        done
        scale_note="Message counts were scaled down by a factor of $factor (Postfix pilot: $prate msg/s at 1 session) to fit the ${DEADLINE}s budget."
        log "$scale_note"
    fi
fi

plan=
for s in $SESSIONS_LIST; do plan+="$s:${MSGS[$s]} "; done
log "plan (sessions:messages): $plan x $REPEATS repeats, size=$SIZE," \
    "reconnect=$ACCEPT_BENCH_RECONNECT, scratch=$scratch ($fstype)"

servers=(postfix)
[[ -z $TOWERPOST_BIN ]] || servers+=(towerpost)
if [[ $INTERLEAVE == 1 ]]; then
    # P T P T ...: slow drift of the machine (disk write-back, noisy
    # neighbours) hits both servers alike.
    for s in $SESSIONS_LIST; do
        for ((r = 1; r <= REPEATS; r++)); do
            for server in "${servers[@]}"; do measure "$server" "$s" "$r"; done
        done
    done
else
    for server in "${servers[@]}"; do
        for s in $SESSIONS_LIST; do
            for ((r = 1; r <= REPEATS; r++)); do measure "$server" "$s" "$r"; done
        done
    done
fi
for server in "${servers[@]}"; do summarize "$server"; done

# --- report --------------------------------------------------------------------
echo
echo "| sessions | messages | Postfix msg/s (median of $REPEATS) | towerpost msg/s (median of $REPEATS) | ratio (towerpost/Postfix) |"
echo "|---:|---:|---:|---:|---:|"
for s in $SESSIONS_LIST; do
    p=${MED[postfix,$s]}
    if [[ -n $TOWERPOST_BIN ]]; then
        t=${MED[towerpost,$s]}
        ratio=$(awk -v p="${p%\*}" -v t="${t%\*}" 'BEGIN {
            if (p + 0 > 0 && t ~ /^[0-9.]+$/) printf "%.2fx\n", t / p
            else print "n/a" }')
    else
        t="not run (TOWERPOST_BIN unset)"
        ratio=n/a
    fi
    echo "| $s | ${MSGS[$s]} | $p | $t | $ratio |"
done
echo
echo "Payload $SIZE bytes/message, smtp-source $(
    [[ $ACCEPT_BENCH_RECONNECT == 1 ]] && echo "new connection per message" ||
        echo "one connection per session (-d)"
), $(nproc) CPUs, queue on $fstype. Raw runs: $results"
[[ -z $scale_note ]] || echo "$scale_note"
((skipped == 0)) || echo "Some runs were skipped (deadline ${DEADLINE}s); * = median of fewer than $REPEATS runs."
((failed == 0)) || echo "Some runs FAILED (see stderr); * = median of fewer than $REPEATS runs."

((failed == 0 && skipped == 0))
