#!/usr/bin/env bash
# Measure FAST FLUSH (ETRN) with many parked messages for other sites:
#
#   compare-flush.sh SCRATCH_DIR TOWERPOST_BIN
#
# For each setup (server, N): start a fresh server that parks all mail for
# customer.test and other.test (defer_transports, ETRN_README's "ETRN-only
# domain" recipe; only customer.test is in fast_flush_domains), fill it with
# N messages for x@other.test and 100 for x@customer.test, wait until every
# one of them has been deferred once ("status=deferred (deferred transport)"
# in the log), then do ROUNDS rounds of:
#
#   send "ETRN customer.test" (flush-helper.py etrn, clock starts right
#   before the command is written) and wait until the 100th customer message
#   has arrived at the customer sink (flush-helper.py sink, which stamps
#   each message at its end of DATA); elapsed = last stamp - ETRN start.
#   Then park 100 new customer messages for the next round; the N others
#   stay parked throughout.
#
# Checked for every setup: ETRN answers "250 Queuing started"; exactly 100
# messages per round reach the customer sink and nothing (not even a
# connection) reaches the other-site sink; customer mail is not delivered
# before its ETRN and is not deferred again after it; the N others are still
# queued at the end.  towerpost's peak RSS (VmHWM) is read after the rounds,
# before anything lists its queue.  Per-round lines and notes go to stderr,
# the Markdown table to stdout, raw rounds to SCRATCH_DIR/results.tsv.
#
# Environment (defaults in brackets):
#   TOWERPOST_COUNTS   parked "other" messages per towerpost setup [2000 200000]
#   POSTFIX_COUNTS     the same for Postfix                    [2000 20000]
#                      (empty: skip that server)
#   CUSTOMER           customer.test messages per round              [100]
#   ROUNDS             ETRN rounds per setup (median taken)            [3]
#   SIZE               payload bytes per message (smtp-source -l)   [1024]
#   FILL_SESSIONS      smtp-source sessions while filling the queue   [10]
#   PARK_BACKOFF       seconds; queue_run_delay = minimal_backoff_time =
#                      PARK_BACKOFF, maximal_backoff_time = 2x, for both
#                      servers, so the parked mail is not retried (and
#                      re-deferred at once) while measuring; 0 = leave the
#                      servers' defaults (300s/300s/4000s)            [3600]
#   POSTFIX_MAX_FILL   seconds; a Postfix setup whose fill would take longer
#                      (estimated from the previous Postfix setup's park
#                      rate) is scaled down to fit, with a note      [600]
#   FILL_TIMEOUT       seconds allowed for filling + parking one setup; the
#                      default is 120 + N/50                            []
#   STALL_TIMEOUT      fail a setup if parking makes no progress for this
#                      many seconds                                     [60]
#   ROUND_TIMEOUT      seconds from ETRN until the 100th message         [120]
#   DEADLINE           no new setup starts after this many seconds     [5400]
#   POSTFIX_PORT / TOWERPOST_PORT  server ports on 127.0.0.1  [2555 / 2556]
#   SINK_PORT          first port tried for the two sinks (customer, other);
#                      the first free ones at or above it are used     [2557]
#   SETTLE             seconds to sleep after "sync" before each ETRN      [1]
#   KEEP_RUNS          1 = keep every setup directory (default: only failed
#                      ones; a 200,000-message queue is ~1 GB)          [0]
#   PYTHON             python3 for flush-helper.py (>= 3.7)        [python3]
#
# Needs root (Postfix instance); the sinks drop to "nobody" after binding.
# All traffic goes to 127.0.0.1 only.  See README.md.
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a "." decimal point, plain grep/sort

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd -P)
INSTANCE=$HERE/postfix-instance.sh
HELPER=$HERE/flush-helper.py
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 2 ]] || usage "SCRATCH_DIR TOWERPOST_BIN"
scratch=$1
TOWERPOST_BIN=$2
TOWERPOST_COUNTS=${TOWERPOST_COUNTS-2000 200000}
POSTFIX_COUNTS=${POSTFIX_COUNTS-2000 20000}
CUSTOMER=${CUSTOMER:-100}
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-1024}
FILL_SESSIONS=${FILL_SESSIONS:-10}
PARK_BACKOFF=${PARK_BACKOFF:-3600}
POSTFIX_MAX_FILL=${POSTFIX_MAX_FILL:-600}
FILL_TIMEOUT=${FILL_TIMEOUT:-}
STALL_TIMEOUT=${STALL_TIMEOUT:-60}
ROUND_TIMEOUT=${ROUND_TIMEOUT:-120}
DEADLINE=${DEADLINE:-5400}
POSTFIX_PORT=${POSTFIX_PORT:-2555}
TOWERPOST_PORT=${TOWERPOST_PORT:-2556}
SINK_PORT=${SINK_PORT:-2557}
SETTLE=${SETTLE:-1}
KEEP_RUNS=${KEEP_RUNS:-0}
PYTHON=${PYTHON:-python3}

require_root "Postfix instance"
require_postfix_tool "$SMTP_SOURCE"
require_bash5
[[ -r $HELPER ]] || die "$HELPER missing"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 7))' 2>/dev/null ||
    die "$PYTHON (3.7 or later) is needed for flush-helper.py"
check_uint_vars "a non-negative integer" CUSTOMER ROUNDS SIZE FILL_SESSIONS PARK_BACKOFF \
    POSTFIX_MAX_FILL STALL_TIMEOUT ROUND_TIMEOUT DEADLINE POSTFIX_PORT TOWERPOST_PORT \
    SINK_PORT SETTLE
[[ -z $FILL_TIMEOUT || $FILL_TIMEOUT =~ ^[0-9]+$ ]] || die "FILL_TIMEOUT must be an integer"
((CUSTOMER >= 1 && ROUNDS >= 1 && FILL_SESSIONS >= 1)) ||
    die "CUSTOMER, ROUNDS and FILL_SESSIONS must be >= 1"
((STALL_TIMEOUT >= 1 && ROUND_TIMEOUT >= 1)) || die "timeouts must be >= 1"
check_ports
for n in $TOWERPOST_COUNTS $POSTFIX_COUNTS; do
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1)); then die "bad parked count: $n"; fi
done
resolve_towerpost_bin

# This script's TOWERPOST_COUNTS/TOWERPOST_PORT, or a developer's
# TOWERPOST_MESSAGE_SIZE_LIMIT, must not reach towerpost (see lib.sh).
unexport_towerpost_vars

make_scratch "$scratch"
[[ $scratch != *[[:space:]]* ]] || die "SCRATCH_DIR must not contain whitespace"
case $scratch in
/root | /root/*) die "SCRATCH_DIR must be reachable by the postfix user (use /var/tmp/...)" ;;
esac
scratch_fstype
results=$scratch/results.tsv
printf 'server\tparked\tround\tetrn_reply_ms\tfirst_ms\tlast_ms\tmsg_per_s\tsink_connections\n' >"$results"

# --- process bookkeeping, so that an interrupted run leaves nothing behind --
pf_dir=         # running Postfix instance dir, if any
tp_pid=         # running towerpost pid, if any
tp_stop_wait=60 # seconds stop_towerpost gives towerpost after SIGTERM
sink_pids=()    # running "timeout ... flush-helper.py sink" pids
fill_pid=       # running smtp-source, if any

stop_fill() {
    [[ -n $fill_pid ]] || return 0
    kill -TERM "$fill_pid" 2>/dev/null || true
    wait "$fill_pid" 2>/dev/null || true
    fill_pid=
}

cleanup() {
    trap '' INT TERM # a second Ctrl-C must not cut the clean-up short
    stop_fill
    stop_servers
    stop_sinks
}
set_cleanup_traps

# --- sinks ---------------------------------------------------------------------
# start_sink FILE PORT LIFETIME: flush-helper.py sink on 127.0.0.1:PORT,
# events to FILE; bounded by timeout(1) in case this script dies without its
# EXIT trap.
start_sink() {
    local out=$1 port=$2 life=$3 pid i
    timeout --kill-after=5 "$life" "$PYTHON" "$HELPER" sink "$port" nobody \
        >"$out" 2>"$out.err" </dev/null &
    pid=$!
    sink_pids+=("$pid")
    for ((i = 0; i < 100; i++)); do
        grep -q '^listening ' "$out" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            log "sink on port $port exited during start-up: $(head -c 500 "$out.err")"
            return 1
        fi
        sleep 0.1
    done
    log "sink did not listen on 127.0.0.1:$port within 10s"
    return 1
}

# --- servers -------------------------------------------------------------------
# start_<server> DIR SINKPORT OTHERPORT; parked_<server> DIR -> number of
# queued messages (may be costly); log_<server> DIR -> mail log.

start_postfix() {
    local dir=$1 sink=$2 other=$3 extra=
    if ((PARK_BACKOFF > 0)); then
        extra=$(printf '%s\n' "queue_run_delay = ${PARK_BACKOFF}s" \
            "minimal_backoff_time = ${PARK_BACKOFF}s" \
            "maximal_backoff_time = $((2 * PARK_BACKOFF))s")
    fi
    POSTFIX_INSTANCE_EXTRA_MAIN_CF=$extra \
        start_postfix_instance "$dir/postfix" etrn "$sink" "$other"
}

log_postfix() { echo "$1/postfix/log/maillog"; }

# Prints "queued not_yet_deferred flushlog_lines": all message files; those
# not (yet) in deferred/; lines in the customer.test fast-flush log.
parked_postfix() {
    local q=$1/postfix/queue all deferred fl=0
    all=$(find "$q/maildrop" "$q/incoming" "$q/active" "$q/deferred" "$q/hold" -type f 2>/dev/null | wc -l)
    deferred=$(find "$q/deferred" -type f 2>/dev/null | wc -l)
    [[ -f $q/flush/customer_test ]] && fl=$(wc -l <"$q/flush/customer_test")
    echo "$all $((all - deferred)) $fl"
}

start_towerpost() {
    local dir=$1 sink=$2 other=$3
    towerpost_prepare "$dir" port_busy || return 1
    # Top-level keys must come before the first table.
    {
        echo "queue_directory = \"$dir/spool\""
        echo 'relay_domains = ["customer.test", "other.test"]'
        echo 'fast_flush_domains = ["customer.test"]'
        echo 'defer_transports = ["etrn-only"]'
        echo 'smtpd_forbid_unauth_pipelining = true'
        if ((PARK_BACKOFF > 0)); then
            echo "queue_run_delay = \"${PARK_BACKOFF}s\""
            echo "minimal_backoff_time = \"${PARK_BACKOFF}s\""
            echo "maximal_backoff_time = \"$((2 * PARK_BACKOFF))s\""
        fi
        echo
        echo '[transport.etrn-only]'
        echo 'type = "smtp"'
        echo
        echo '[transport_maps]'
        echo "\"customer.test\" = \"etrn-only:[127.0.0.1]:$sink\""
        echo "\"other.test\" = \"etrn-only:[127.0.0.1]:$other\""
        towerpost_listener_toml
    } >"$dir/towerpost.toml"
    towerpost_launch "$dir" port_busy --config "$dir/towerpost.toml" serve
}

log_towerpost() { echo "$1/towerpost.log"; }

# Number of queued messages, over the control socket.  The server answers
# with the whole list in one reply, so this costs it memory: call it only
# after VmHWM has been read.
queue_towerpost() {
    local n
    n=$("$TOWERPOST_BIN" --config "$1/towerpost.toml" queue list --json 2>>"$1/queue-list.err" |
        wc -l) || return 1
    echo "$n"
}

# --- one setup -----------------------------------------------------------------

DEFERRED_PAT='status=deferred (deferred transport)'
CUST_DEFERRED_PAT='to=<x@customer.test>,.*status=deferred (deferred transport)'
CUST_SENT_PAT='to=<x@customer.test>,.*status=sent'
CUST_OTHER_DEFER_PAT='to=<x@customer.test>,.*status=deferred ([^d]'

# fill SERVER DIR PORT RCPT COUNT TIMEOUT: smtp-source, bounded.
fill() {
    local port=$3 rcpt=$4 m=$5 limit=$6 rc=0 s=$FILL_SESSIONS
    ((s <= m)) || s=$m
    timeout --kill-after=10 "$limit" "$SMTP_SOURCE" -s "$s" -m "$m" -l "$SIZE" \
        -M bench.localhost -f bench@example.test -t "$rcpt" -C 3 -d \
        "127.0.0.1:$port" >>"$2/smtp-source.out" 2>&1 &
    fill_pid=$!
    wait "$fill_pid" || rc=$?
    fill_pid=
    return "$rc"
}

# park_wait SERVER DIR TOTAL CUSTOMER_TOTAL DEADLINE_US: wait until the log
# has TOTAL "deferred transport" lines, CUSTOMER_TOTAL of them for
# customer.test (the fill is over, so that is every message), and for Postfix
# also until every message file sits in deferred/ and the customer.test
# fast-flush log lists at least CUSTOMER ids (ETRN skips files that are not
# in deferred/).  Fails at DEADLINE_US or after STALL_TIMEOUT without
# progress.  Sets PARK_INFO.
PARK_INFO=
park_wait() {
    local server=$1 dir=$2 total=$3 ctotal=$4 deadline=$5
    local logf n c t last=-1 last_change poll pf=() ok
    logf=$("log_$server" "$dir")
    last_change=$(now_us)
    poll=0.2
    ((total <= 20000)) || poll=1 # grep -c over a large log is not free
    while :; do
        n=$(count "$DEFERRED_PAT" "$logf")
        t=$(now_us)
        if ((n != last)); then
            last=$n
            last_change=$t
        fi
        if ((n >= total)); then
            c=$(count "$CUST_DEFERRED_PAT" "$logf")
            ok=1
            ((c >= ctotal)) || ok=0
            if [[ $server == postfix ]]; then
                read -r -a pf <<<"$(parked_postfix "$dir")"
                ((pf[1] == 0 && pf[2] >= CUSTOMER)) || ok=0
            fi
            ((ok == 1)) && return 0
        fi
        if ((t >= deadline)); then
            PARK_INFO="not parked by the deadline: $n of $total deferred-transport lines${pf:+ (postfix: ${pf[*]})}"
            return 1
        fi
        if ((t - last_change >= STALL_TIMEOUT * 1000000)); then
            PARK_INFO="parking stalled for ${STALL_TIMEOUT}s at $n of $total deferred-transport lines"
            return 1
        fi
        sleep "$poll"
    done
}

# ns_at FILE N: time stamp of the N-th "msg" line of a sink file.
ns_at() {
    awk -v n="$2" '$1 == "msg" && ++k == n { print $2; exit }' "$1"
}

# run_setup SERVER N -> SETUP_TIMES (seconds per round), SETUP_RSS (KiB or -)
SETUP_TIMES=
SETUP_RSS=-
SETUP_NOTE=
run_setup() {
    local server=$1 n=$2 dir port sinkport otherport logf life limit t0 t1 fill_s
    local r line et0 et1 reply base last first secs rate nconn rc=0 problems=()
    local total ctotal i c sent q hwm=- rss=- parked_s etrn_ms first_ms pf=() sched
    SETUP_TIMES=
    SETUP_RSS=-
    SETUP_NOTE=
    dir=$scratch/$server-n$n
    rm -rf "$dir"
    mkdir -p "$dir"
    if [[ $server == postfix ]]; then port=$POSTFIX_PORT; else port=$TOWERPOST_PORT; fi
    logf=$("log_$server" "$dir")
    limit=${FILL_TIMEOUT:-$((120 + n / 50))}
    life=$((limit + ROUNDS * (ROUND_TIMEOUT + limit) + 600))

    if ! sinkport=$(free_port "$SINK_PORT") ||
        ! otherport=$(free_port "$SINK_PORT" "$sinkport"); then
        log "$server n=$n: no free ports for the sinks at $SINK_PORT.."
        return 1
    fi
    if ! start_sink "$dir/sink-customer.out" "$sinkport" "$life" ||
        ! start_sink "$dir/sink-other.out" "$otherport" "$life"; then
        stop_sinks
        log "$server n=$n FAILED: sinks did not start; files kept in $dir"
        return 1
    fi
    if ! "start_$server" "$dir" "$sinkport" "$otherport"; then
        stop_sinks
        log "$server n=$n FAILED to start; files kept in $dir"
        return 1
    fi
    log "$server n=$n: server on 127.0.0.1:$port, customer sink :$sinkport, other sink :$otherport; filling"

    # Fill: N others, then the first CUSTOMER customer messages.
    t0=$(now_us)
    if ! fill "$server" "$dir" "$port" x@other.test "$n" "$limit" ||
        ! fill "$server" "$dir" "$port" x@customer.test "$CUSTOMER" 60; then
        problems+=("smtp-source failed while filling (see $dir/smtp-source.out)")
        rc=1
    fi
    t1=$(now_us)
    fill_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
    if ((rc == 0)) && ! park_wait "$server" "$dir" $((n + CUSTOMER)) "$CUSTOMER" \
        $((t0 + limit * 1000000)); then
        problems+=("$PARK_INFO")
        rc=1
    fi
    parked_s=$(awk -v a="$t0" -v b="$(now_us)" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
    if ((rc == 0)); then
        PARK_RATE=$(awk -v m=$((n + CUSTOMER)) -v t="$parked_s" 'BEGIN { printf "%.1f", m / t }')
        log "$server n=$n: accepted $((n + CUSTOMER)) messages in ${fill_s}s, all parked after" \
            "${parked_s}s ($PARK_RATE msg/s)"
        if (($(count '^conn ' "$dir/sink-customer.out") > 0)); then
            problems+=("customer sink was contacted before any ETRN")
            rc=1
        fi
    fi

    for ((r = 1; r <= ROUNDS && rc == 0; r++)); do
        total=$((n + r * CUSTOMER))
        ctotal=$((r * CUSTOMER))
        base=$(((r - 1) * CUSTOMER))
        if ((r > 1)); then
            # Re-park CUSTOMER new customer messages; the others stay parked.
            if ! fill "$server" "$dir" "$port" x@customer.test "$CUSTOMER" 60; then
                problems+=("round $r: smtp-source failed while re-parking")
                rc=1
                break
            fi
            if ! park_wait "$server" "$dir" "$total" "$ctotal" \
                $(($(now_us) + 120000000)); then
                problems+=("round $r: re-parked customer mail: $PARK_INFO")
                rc=1
                break
            fi
            c=$(count '^msg ' "$dir/sink-customer.out")
            if ((c != base)); then
                problems+=("round $r: customer sink has $c messages before the ETRN, expected $base")
                rc=1
                break
            fi
        fi
        settle
        if ! line=$("$PYTHON" "$HELPER" etrn "$port" customer.test 30 2>>"$dir/etrn.err"); then
            problems+=("round $r: ETRN failed: ${line:-$(tail -n 1 "$dir/etrn.err" 2>/dev/null)}")
            rc=1
            break
        fi
        [[ $line =~ ^t0=([0-9]+)\ t1=([0-9]+)\ reply=(.*)$ ]] || {
            problems+=("round $r: bad ETRN client output: $line")
            rc=1
            break
        }
        et0=${BASH_REMATCH[1]}
        et1=${BASH_REMATCH[2]}
        reply=${BASH_REMATCH[3]}
        if [[ $reply != "250 Queuing started" ]]; then
            problems+=("round $r: ETRN reply '$reply', expected '250 Queuing started'")
            rc=1
            break
        fi
        # Wait for the last of the CUSTOMER messages (bounded; the time
        # itself comes from the sink's stamps, not from this loop).
        for ((i = 0; ; i++)); do
            c=$(count '^msg ' "$dir/sink-customer.out")
            ((c >= base + CUSTOMER)) && break
            if (($(now_us) - et0 / 1000 >= ROUND_TIMEOUT * 1000000)); then
                problems+=("round $r: only $((c - base)) of $CUSTOMER customer messages arrived within ${ROUND_TIMEOUT}s of the ETRN")
                rc=1
                break 2
            fi
            sleep 0.02
        done
        last=$(ns_at "$dir/sink-customer.out" $((base + CUSTOMER)))
        first=$(ns_at "$dir/sink-customer.out" $((base + 1)))
        secs=$(awk -v a="$et0" -v b="$last" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
        rate=$(awk -v m="$CUSTOMER" -v t="$secs" 'BEGIN { if (t <= 0) t = 1e-9; printf "%.1f", m / t }')
        etrn_ms=$(awk -v a="$et0" -v b="$et1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
        first_ms=$(awk -v a="$et0" -v b="$first" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
        # The server must also have logged the deliveries; customer mail
        # must not have been deferred for any other reason.
        for ((i = 0; i < 100; i++)); do
            sent=$(count "$CUST_SENT_PAT" "$logf")
            ((sent >= ctotal)) && break
            sleep 0.1
        done
        ((sent == ctotal)) ||
            problems+=("round $r: log has $sent status=sent for customer.test, expected $ctotal")
        c=$(count "$CUST_OTHER_DEFER_PAT" "$logf")
        ((c == 0)) || problems+=("round $r: $c deferrals of customer mail other than 'deferred transport'")
        c=$(count "$CUST_DEFERRED_PAT" "$logf")
        ((c == ctotal)) ||
            problems+=("round $r: $c 'deferred transport' lines for customer.test, expected $ctotal (re-deferred after the flush?)")
        nconn=$(count '^conn ' "$dir/sink-customer.out")
        sched=
        if [[ $server == towerpost ]]; then
            # towerpost logs how many messages the flush scheduled.
            sched=$(grep -o 'ETRN customer\.test from .*: [0-9]* messages scheduled' "$logf" |
                tail -n 1 | grep -o '[0-9]* messages scheduled') || sched=
            [[ -z $sched ]] || sched="; towerpost: $sched"
        fi
        SETUP_TIMES+="$secs "
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$n" "$r" "$etrn_ms" "$first_ms" \
            "$(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 1000 }')" "$rate" "$nconn" >>"$results"
        log "$server: parked=$n round=$r ETRN->last of $CUSTOMER: ${secs}s ($rate msg/s);" \
            "ETRN reply after ${etrn_ms} ms; first message after ${first_ms} ms;" \
            "sink connections so far: $nconn$sched"
        ((${#problems[@]} == 0)) || { rc=1; break; }
    done

    # Peak RSS first (the queue listing below makes towerpost build a large
    # reply), then check that the others are all still parked.
    if [[ $server == towerpost && -n $tp_pid && -r /proc/$tp_pid/status ]]; then
        hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$tp_pid/status") || hwm=-
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$tp_pid/status") || rss=-
        SETUP_RSS=${hwm:--}
    fi
    if ((rc == 0)); then
        if [[ $server == towerpost ]]; then
            q=$(queue_towerpost "$dir") || q='?'
        else
            read -r -a pf <<<"$(parked_postfix "$dir")"
            q=${pf[0]}
        fi
        [[ $q == "$n" ]] || problems+=("$q messages queued at the end, expected the $n others")
        if [[ $server == towerpost && -r /proc/$tp_pid/status ]]; then
            SETUP_NOTE="VmHWM ${hwm} KiB after the rounds (VmRSS ${rss} KiB); $(
                awk '/^VmHWM:/ { print $2 }' "/proc/$tp_pid/status") KiB after one 'queue list'"
        fi
    fi
    if [[ $server == postfix ]]; then stop_postfix; else stop_towerpost; fi
    stop_sinks

    c=$(count '^conn ' "$dir/sink-other.out")
    ((c == 0)) || problems+=("the other-site sink got $c connections ($(count '^msg ' "$dir/sink-other.out") messages)")
    show_warnings "$server n=$n" "$logf" '(warning|error|fatal|panic|ERROR|WARN)[: ]' >/dev/null
    if ((${#problems[@]} > 0)); then
        log "$server n=$n FAILED: $(printf '%s; ' "${problems[@]}")files kept in $dir"
        return 1
    fi
    [[ -z $SETUP_NOTE ]] || log "$server n=$n: $SETUP_NOTE"
    if [[ $KEEP_RUNS != 1 ]]; then
        log "$server n=$n: removing $dir"
        rm -rf "$dir"
    fi
    settle
    return 0
}

# --- plan ----------------------------------------------------------------------
declare -A MED COUNT_OK RSS NOTE
failed=0
skipped=0
scale_note=
PARK_RATE=

log "scratch=$scratch ($fstype), towerpost=$TOWERPOST_BIN, customer=$CUSTOMER x $ROUNDS rounds," \
    "size=$SIZE, fill sessions=$FILL_SESSIONS, park backoff=${PARK_BACKOFF}s"
log "plan: towerpost parked=[$TOWERPOST_COUNTS], Postfix parked=[$POSTFIX_COUNTS]"

pf_counts=()
for n in $POSTFIX_COUNTS; do pf_counts+=("$n"); done
tp_counts=()
for n in $TOWERPOST_COUNTS; do tp_counts+=("$n"); done

run_and_record() {
    local server=$1 n=$2
    if ((SECONDS >= DEADLINE)); then
        log "deadline of ${DEADLINE}s reached; skipping $server parked=$n"
        skipped=1
        return 0
    fi
    if run_setup "$server" "$n"; then
        MED[$server,$n]=$(median 4 <<<"$SETUP_TIMES")
        COUNT_OK[$server,$n]=$(wc -w <<<"$SETUP_TIMES")
        RSS[$server,$n]=$SETUP_RSS
        NOTE[$server,$n]=$SETUP_NOTE
    else
        failed=1
        RSS[$server,$n]=$SETUP_RSS
    fi
}

# Postfix first (small to large: each setup's park rate bounds the next), then
# towerpost.
pf_done=()
for ((k = 0; k < ${#pf_counts[@]}; k++)); do
    n=${pf_counts[k]}
    if [[ -n $PARK_RATE ]] && ((k > 0)); then
        est=$(awk -v n="$n" -v c="$CUSTOMER" -v r="$PARK_RATE" 'BEGIN { printf "%d", (n + c) / r }')
        if ((est > POSTFIX_MAX_FILL)); then
            m=$(awk -v r="$PARK_RATE" -v t="$POSTFIX_MAX_FILL" -v c="$CUSTOMER" 'BEGIN {
                v = int((r * t - c) / 1000) * 1000; if (v < 1000) v = 1000; print v }')
            scale_note+="Postfix parked=$n scaled down to $m: at the measured $PARK_RATE msg/s (fill + first deferral) it would take ~${est}s (> POSTFIX_MAX_FILL=${POSTFIX_MAX_FILL}s). "
            log "Postfix parked=$n would take ~${est}s to fill at $PARK_RATE msg/s; using $m"
            n=$m
        fi
    fi
    PARK_RATE=
    run_and_record postfix "$n"
    pf_done+=("$n")
done
for n in "${tp_counts[@]}"; do run_and_record towerpost "$n"; done

# --- report --------------------------------------------------------------------
row() {
    local server=$1 label=$2 small=$3 n=$4 med rate ratio
    med=${MED[$server,$n]:-}
    if [[ -z $med ]]; then
        echo "| $label | $n | failed/skipped | n/a | n/a |"
        return
    fi
    rate=$(awk -v m="$CUSTOMER" -v t="$med" 'BEGIN { if (t <= 0) t = 1e-9; printf "%.0f", m / t }')
    ratio=n/a
    if [[ -n ${MED[$server,$small]:-} ]]; then
        ratio=$(awk -v a="$med" -v b="${MED[$server,$small]}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')
    fi
    local star=
    ((${COUNT_OK[$server,$n]:-0} == ROUNDS)) || star='*'
    echo "| $label | $n | $(awk -v t="$med" 'BEGIN { printf "%.1f ms", t * 1000 }')$star | $rate | $ratio |"
}

echo
echo "| server | parked others | ETRN→last of $CUSTOMER (median of $ROUNDS) | messages/s for the flushed $CUSTOMER | ratio to the smaller case |"
echo "|---|---:|---:|---:|---:|"
if ((${#pf_done[@]} > 0)); then
    for n in "${pf_done[@]}"; do row postfix Postfix "${pf_done[0]}" "$n"; done
fi
if ((${#tp_counts[@]} > 0)); then
    for n in "${tp_counts[@]}"; do row towerpost towerpost "${tp_counts[0]}" "$n"; done
fi
echo
for n in "${tp_counts[@]}"; do
    if [[ ${RSS[towerpost,$n]:-} =~ ^[0-9]+$ ]]; then
        echo "towerpost peak RSS (VmHWM) with $n parked: $(awk -v k="${RSS[towerpost,$n]}" 'BEGIN { printf "%.1f MiB", k / 1024 }')${NOTE[towerpost,$n]:+ (${NOTE[towerpost,$n]})}."
    fi
done
if ((${#tp_counts[@]} > 1)); then
    small=${tp_counts[0]}
    big=${tp_counts[${#tp_counts[@]} - 1]}
    if [[ -n ${MED[towerpost,$small]:-} && -n ${MED[towerpost,$big]:-} ]]; then
        echo "towerpost target (parked=$big within 1.2x of parked=$small): $(awk -v a="${MED[towerpost,$big]}" -v b="${MED[towerpost,$small]}" 'BEGIN { if (a <= 1.2 * b) print "met"; else print "NOT met" }')."
    fi
fi
echo "Clock: from just before 'ETRN customer.test' is written to the end of DATA of the" \
    "${CUSTOMER}th customer message at the sink (flush-helper.py, same host clock). Each" \
    "setup is a fresh server; the others ($SIZE-byte payload) stay parked through all" \
    "rounds; $(nproc) CPUs, queue on $fstype; park backoff ${PARK_BACKOFF}s. Raw rounds: $results"
[[ -z $scale_note ]] || echo "$scale_note"
((skipped == 0)) || echo "Some setups were skipped (deadline ${DEADLINE}s)."
((failed == 0)) || echo "Some setups FAILED (see stderr); * = median of fewer than $ROUNDS rounds."

((failed == 0 && skipped == 0))
