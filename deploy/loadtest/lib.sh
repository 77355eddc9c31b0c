# shellcheck shell=bash
# Helpers shared by compare-accept.sh, compare-relay.sh and compare-flush.sh.
# Source it, do not run it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sourcing only defines functions.  They use the driver's globals:
#   PROG           name for messages (die, log, usage)
#   INSTANCE       path of postfix-instance.sh (Postfix start/stop)
#   TOWERPOST_BIN, TOWERPOST_PORT, POSTFIX_PORT, SINK_PORT, SETTLE, scratch
#   pf_dir         running Postfix instance dir, if any (set/cleared here)
#   tp_pid         running towerpost pid, if any (set/cleared here)
#   tp_stop_wait   seconds stop_towerpost waits after SIGTERM [30]
#   sink_pids      array of running sink pids (timeout(1) wrappers)
# and, for the per-session-count drivers (accept, relay), SESSIONS_LIST,
# REPEATS, DEADLINE, INTERLEAVE, MSGS/RATES/MED/RSSMAX (associative arrays),
# RUN_RATE/RUN_RSS (set by the driver's run_one), failed, skipped, scale_note.
#
# MSGS, RATES, MED and RSSMAX are associative arrays declared by the drivers,
# which shellcheck cannot see from here (SC2004 would misread their keys).
# shellcheck disable=SC2004

# --- messages and argument checks ----------------------------------------------

# die MSG...: print "PROG: MSG" on stderr and exit 1.
die() {
    echo "$PROG: $*" >&2
    exit 1
}

# log MSG...: print "PROG: MSG" on stderr.
log() { echo "$PROG: $*" >&2; }

# usage ARGS...: print "usage: PROG ARGS" on stderr and exit 2.
usage() {
    echo "usage: $PROG $*" >&2
    exit 2
}

# require_root WHY: die unless running as root ("must run as root (WHY)").
require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root ($1)"
}

# require_postfix_tool PATH [NAME]: die unless PATH is executable
# ("NAME missing (apt-get install postfix)"; NAME defaults to PATH).
require_postfix_tool() {
    [[ -x $1 ]] || die "${2:-$1} missing (apt-get install postfix)"
}

# require_bash5: die without EPOCHREALTIME (now_us needs it).
require_bash5() {
    [[ -n ${EPOCHREALTIME:-} ]] || die "bash 5 or later is needed (EPOCHREALTIME)"
}

# check_uint_vars WHAT VAR...: die unless every named variable holds digits
# only ("VAR must be WHAT: VALUE").
check_uint_vars() {
    local what=$1 v
    shift
    for v in "$@"; do
        [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be $what: ${!v}"
    done
}

# check_ports: POSTFIX_PORT, TOWERPOST_PORT and SINK_PORT must be in
# 1024..65000, and the two server ports must differ.
check_ports() {
    local v
    for v in POSTFIX_PORT TOWERPOST_PORT SINK_PORT; do
        ((${!v} >= 1024 && ${!v} <= 65000)) || die "$v must be in 1024..65000"
    done
    ((POSTFIX_PORT != TOWERPOST_PORT)) || die "POSTFIX_PORT and TOWERPOST_PORT must differ"
}

# resolve_towerpost_bin: make TOWERPOST_BIN an absolute, physical path (a
# bare name is looked up in PATH); die unless it is an executable file.
resolve_towerpost_bin() {
    if [[ $TOWERPOST_BIN != */* ]]; then # bare name: look it up in PATH
        TOWERPOST_BIN=$(command -v "$TOWERPOST_BIN") ||
            die "TOWERPOST_BIN not found in PATH"
    fi
    [[ -f $TOWERPOST_BIN && -x $TOWERPOST_BIN ]] ||
        die "TOWERPOST_BIN is not an executable file: $TOWERPOST_BIN"
    TOWERPOST_BIN=$(cd "$(dirname "$TOWERPOST_BIN")" && pwd -P)/${TOWERPOST_BIN##*/}
}

# unexport_towerpost_vars: stop exporting every TOWERPOST_* variable (any
# case).  towerpost reads each of them as a configuration key and refuses
# unknown ones ("environment variable TOWERPOST_BIN: unknown key 'bin'"), so
# the drivers' own TOWERPOST_BIN/TOWERPOST_PORT/..., or a developer's
# TOWERPOST_MESSAGE_SIZE_LIMIT, must not reach the server under test; they
# stay set as shell variables.  The server's settings come from the
# generated file only.
unexport_towerpost_vars() {
    local v
    while read -r v; do
        # shellcheck disable=SC2163 # un-export the variable named by $v
        [[ -n $v ]] && export -n "$v"
    done < <(compgen -e | grep -i '^towerpost_' || true)
}

# read_message_counts DEFAULT [DEFAULT_1]: fill MSGS[S] for every session
# count S in SESSIONS_LIST from MESSAGES_<S> (default DEFAULT; DEFAULT_1 for
# S = 1 if given); die on a bad session or message count.
read_message_counts() {
    local s var default
    for s in $SESSIONS_LIST; do
        if ! [[ $s =~ ^[0-9]+$ ]] || ((s < 1)); then die "bad session count: $s"; fi
        var=MESSAGES_$s
        default=$1
        ((s == 1)) && default=${2:-$1}
        MSGS[$s]=${!var:-$default}
        if ! [[ ${MSGS[$s]} =~ ^[0-9]+$ ]] || ((MSGS[$s] < 1)); then die "bad $var"; fi
    done
}

# make_scratch DIR: create DIR and set scratch to its absolute, physical path.
make_scratch() {
    mkdir -p "$1"
    scratch=$(cd "$1" && pwd -P)
}

# scratch_fstype: set fstype to the file system type of scratch; warn if it
# is tmpfs/ramfs (fsync costs nothing there).
scratch_fstype() {
    fstype=$(findmnt -n -o FSTYPE -T "$scratch" 2>/dev/null || stat -f -c %T "$scratch")
    if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
        log "WARNING: $scratch is on $fstype; fsync is free there, results are not" \
            "representative of a disk-backed queue"
    fi
}

# --- small utilities -----------------------------------------------------------

# now_us: microseconds since the epoch, without forking (needs bash 5).
now_us() {
    local t=$EPOCHREALTIME
    echo $((10#${t/[.,]/}))
}

# port_open PORT: true if a test connection to 127.0.0.1:PORT succeeds.
port_open() {
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# port_busy PORT: true if something listens on PORT (127.0.0.1, 0.0.0.0 or
# [::]).  Uses ss rather than a test connection, which a sink would count as
# a session; falls back to port_open without ss.
port_busy() {
    if command -v ss >/dev/null; then
        [[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]
    else
        port_open "$1"
    fi
}

# free_port FROM [EXCLUDE...]: print the first port at or above FROM (up to
# FROM+99) that is free (port_busy) and neither a server port nor excluded.
free_port() {
    local p from=$1 x skip
    shift
    for ((p = from; p < from + 100; p++)); do
        ((p == POSTFIX_PORT || p == TOWERPOST_PORT)) && continue
        skip=0
        for x in "$@"; do ((p == x)) && skip=1; done
        ((skip == 0)) || continue
        port_busy "$p" || { echo "$p"; return 0; }
    done
    return 1
}

# count PATTERN FILE: print the number of matching lines (0 if none or no
# file).
count() {
    local n
    n=$(grep -c -e "$1" "$2" 2>/dev/null) || true
    echo "${n:-0}"
}

# show_warnings LABEL FILE ERE: print the number of lines of FILE matching
# ERE; if there are any, log "LABEL: N warning/error lines in FILE, e.g.:"
# and the first five of them on stderr.
show_warnings() {
    local n
    n=$(grep -cE "$3" "$2" 2>/dev/null) || true
    n=${n:-0}
    if ((n > 0)); then
        log "$1: $n warning/error lines in $2, e.g.:"
        grep -E "$3" "$2" | head -n 5 >&2 || true
    fi
    echo "$n"
}

# settle: flush dirty data (e.g. a deleted or freshly written queue) so that
# write-back does not run during the next measurement, then sleep SETTLE s.
settle() {
    sync
    sleep "$SETTLE"
}

# median [DECIMALS]: median of the whitespace-separated numbers on stdin,
# printed with DECIMALS (default 1) decimals; fails if there are none.
median() {
    tr ' ' '\n' | grep . | sort -g | awk -v fmt="%.${1:-1}f\n" '
        { v[NR] = $1 }
        END {
            if (NR == 0) exit 1
            if (NR % 2) printf fmt, v[(NR + 1) / 2]
            else printf fmt, (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

# --- CPU and memory of a server's processes ---------------------------------------

# server_pids SERVER: print the pids of every process of the running server:
# towerpost's one process (tp_pid), or Postfix's master and everything in
# its session (master calls setsid(), so its pid is the session id).
server_pids() {
    local master f
    if [[ $1 == towerpost ]]; then
        [[ -n $tp_pid ]] && echo "$tp_pid"
        return 0
    fi
    master=$(tr -d ' \n' <"$pf_dir/queue/pid/master.pid" 2>/dev/null) || return 0
    [[ -n $master ]] || return 0
    for f in /proc/[0-9]*/stat; do
        # Field 6 is the session id; the command name (field 2) has no
        # spaces for Postfix's programs.
        awk -v sid="$master" '$6 == sid { print $1 }' "$f" 2>/dev/null || true
    done
}

# cpu_ticks SERVER: user+system CPU of the server's processes in clock
# ticks, counting Postfix's exited children through the master's cutime and
# cstime (they are reaped by the master).
cpu_ticks() {
    local pid total=0 t
    for pid in $(server_pids "$1"); do
        t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat" 2>/dev/null) || continue
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# mem_kib SERVER: "RSS PSS" summed over the server's processes, in KiB
# (RSS counts shared pages once per process, as ps does; PSS shares them).
mem_kib() {
    local pid rss=0 pss=0 r p
    for pid in $(server_pids "$1"); do
        read -r r p < <(awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r + 0, p + 0 }' \
            "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
        rss=$((rss + r))
        pss=$((pss + p))
    done
    echo "$rss $pss"
}

# mem_sampler SERVER FILE: every 0.5 s until killed (or the script that
# started it is gone), write the peak "RSS PSS" so far (KiB, summed over
# the server's processes) to FILE.
mem_sampler() {
    local peak_r=0 peak_p=0 r p
    while kill -0 "$$" 2>/dev/null; do
        read -r r p < <(mem_kib "$1")
        ((r > peak_r)) && peak_r=$r
        ((p > peak_p)) && peak_p=$p
        echo "$peak_r $peak_p" >"$2.tmp" && mv -f "$2.tmp" "$2"
        sleep 0.5
    done
}

# --- servers and sinks -----------------------------------------------------------

# start_postfix_instance DIR MODE [MODE_ARGS...]: postfix-instance.sh start
# DIR POSTFIX_PORT MODE ... (output discarded).  pf_dir is set first: a
# SIGTERM that arrives while the instance is starting is handled after
# postfix-instance.sh returns, and the EXIT trap must then stop it.  On
# failure a half-started instance is stopped and pf_dir cleared.
start_postfix_instance() {
    local dir=$1
    shift
    pf_dir=$dir
    "$INSTANCE" start "$dir" "$POSTFIX_PORT" "$@" >/dev/null && return 0
    if [[ -d $dir/etc ]]; then stop_postfix; fi
    pf_dir=
    return 1
}

# stop_postfix: stop the instance in pf_dir, if any (a failure is logged).
stop_postfix() {
    [[ -n $pf_dir ]] || return 0
    "$INSTANCE" stop "$pf_dir" >/dev/null || log "stopping Postfix in $pf_dir failed"
    pf_dir=
}

# towerpost_prepare DIR PROBE: create DIR/spool; fail (logged) if PROBE
# (port_open or port_busy) says TOWERPOST_PORT is already in use.
towerpost_prepare() {
    mkdir -p "$1/spool"
    if "$2" "$TOWERPOST_PORT"; then
        log "127.0.0.1:$TOWERPOST_PORT already in use"
        return 1
    fi
}

# towerpost_listener_toml: print a blank line and the [[listener]] table
# (plain SMTP on 127.0.0.1:TOWERPOST_PORT).  It must come after all top-level
# keys, or TOML would put them inside it.
towerpost_listener_toml() {
    echo
    echo '[[listener]]'
    echo 'name = "smtp"'
    echo "address = \"127.0.0.1:$TOWERPOST_PORT\""
    echo 'tls = "none"'
}

# towerpost_launch DIR PROBE ARGS...: run "TOWERPOST_BIN ARGS..." in the
# background (log DIR/towerpost.log, pid in tp_pid) and wait up to 30 s
# until PROBE (port_open or port_busy) sees TOWERPOST_PORT.  On failure the
# log's tail goes to stderr and nothing is left running.
towerpost_launch() {
    local dir=$1 probe=$2 i
    shift 2
    "$TOWERPOST_BIN" "$@" >"$dir/towerpost.log" 2>&1 </dev/null &
    tp_pid=$!
    for ((i = 0; i < 300; i++)); do
        "$probe" "$TOWERPOST_PORT" && return 0
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

# stop_towerpost: SIGTERM the towerpost in tp_pid, if any; SIGKILL it if it
# is still there after tp_stop_wait (default 30) seconds; reap it.
stop_towerpost() {
    local i limit=${tp_stop_wait:-30}
    [[ -n $tp_pid ]] || return 0
    kill -TERM "$tp_pid" 2>/dev/null || true
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$tp_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$tp_pid" 2>/dev/null; then
        log "towerpost (pid $tp_pid) ignored SIGTERM for ${limit}s; sending SIGKILL"
        kill -KILL "$tp_pid" 2>/dev/null || true
    fi
    wait "$tp_pid" 2>/dev/null || true
    tp_pid=
}

# stop_servers: stop_towerpost, then stop_postfix.
stop_servers() {
    stop_towerpost
    stop_postfix
}

# stop_sinks: stop every sink in sink_pids and clear it.  The pids are
# timeout(1)'s, which passes SIGTERM on to the sink; SIGKILL after 5 s.
stop_sinks() {
    local p i
    for p in "${sink_pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${sink_pids[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    sink_pids=()
}

# set_cleanup_traps: run the driver's "cleanup" function on EXIT; turn
# SIGINT/SIGTERM into exit 130 (which runs it too).
set_cleanup_traps() {
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

# --- plan, runs and report of the per-session-count drivers ------------------------

# plan_scale_factor PILOT_RATE OVERHEAD: print the factor (1 = no scaling)
# by which all MSGS must be scaled so that REPEATS runs per session count
# and server, each at PILOT_RATE msg/s plus OVERHEAD seconds, end within 80%
# of DEADLINE (counting from now, SECONDS); at least 0.01.
plan_scale_factor() {
    local s total=0 nserv=1 nsess
    for s in $SESSIONS_LIST; do total=$((total + MSGS[$s])); done
    [[ -z $TOWERPOST_BIN ]] || nserv=2
    nsess=$(wc -w <<<"$SESSIONS_LIST")
    awk -v t="$total" -v r="$REPEATS" -v n="$nserv" -v p="$1" -v o="$2" \
        -v k="$nsess" -v d="$DEADLINE" -v sec="$SECONDS" 'BEGIN {
            est = n * r * (t / p + o * k)
            if (est <= 0.8 * d - sec) { print 1; exit }
            f = (0.8 * d - sec - n * r * o * k) / (n * r * t / p)
            if (f < 0.01) f = 0.01
            printf "%.4f\n", f
        }'
}

# scale_messages FACTOR: multiply every MSGS entry by FACTOR (at least 100).
scale_messages() {
    local s
    for s in $SESSIONS_LIST; do
        MSGS[$s]=$(awk -v m="${MSGS[$s]}" -v f="$1" 'BEGIN {
            v = int(m * f); if (v < 100) v = 100; print v }')
    done
}

# plan_string: print "S:MESSAGES " for every session count.
plan_string() {
    local s plan=
    for s in $SESSIONS_LIST; do plan+="$s:${MSGS[$s]} "; done
    echo "$plan"
}

# measure SERVER S R: one run_one of SERVER at S sessions, repeat R, unless
# DEADLINE has passed (then skipped=1).  Appends RUN_RATE to RATES[SERVER,S]
# and keeps the largest numeric RUN_RSS in RSSMAX[S]; failed=1 on failure.
measure() {
    local server=$1 s=$2 r=$3
    if ((SECONDS >= DEADLINE)); then
        log "deadline of ${DEADLINE}s reached; skipping $server sessions=$s run=$r"
        skipped=1
        return 0
    fi
    if run_one "$server" "$s" "${MSGS[$s]}" "$r"; then
        RATES[$server,$s]+="$RUN_RATE "
        if [[ ${RUN_RSS:-} =~ ^[0-9]+$ ]] && ((RUN_RSS > ${RSSMAX[$s]:-0})); then
            RSSMAX[$s]=$RUN_RSS
        fi
    else
        failed=1
    fi
}

# run_plan SERVER...: measure every server REPEATS times at every session
# count; with INTERLEAVE=1 run by run (P T P T ...: slow drift of the machine,
# such as disk write-back or noisy neighbours, hits both servers alike),
# otherwise server by server.
run_plan() {
    local s r server
    if [[ $INTERLEAVE == 1 ]]; then
        for s in $SESSIONS_LIST; do
            for ((r = 1; r <= REPEATS; r++)); do
                for server in "$@"; do measure "$server" "$s" "$r"; done
            done
        done
    else
        for server in "$@"; do
            for s in $SESSIONS_LIST; do
                for ((r = 1; r <= REPEATS; r++)); do measure "$server" "$s" "$r"; done
            done
        done
    fi
}

# summarize SERVER: set MED[SERVER,S] to the median of RATES[SERVER,S] ("*"
# appended if fewer than REPEATS runs succeeded; "n/a" if none).
summarize() {
    local server=$1 s rates
    for s in $SESSIONS_LIST; do
        rates=${RATES[$server,$s]:-}
        if [[ -n $rates ]]; then
            MED[$server,$s]=$(median 1 <<<"$rates")
            (($(wc -w <<<"$rates") == REPEATS)) ||
                MED[$server,$s]="${MED[$server,$s]}*"
        else
            MED[$server,$s]=n/a
        fi
    done
}

# ratio_of POSTFIX_MEDIAN TOWERPOST_MEDIAN: print "T/Px" with two decimals
# (a trailing "*" is ignored), or "n/a".
ratio_of() {
    awk -v p="${1%\*}" -v t="${2%\*}" 'BEGIN {
        if (p + 0 > 0 && t ~ /^[0-9.]+$/) printf "%.2fx\n", t / p
        else print "n/a" }'
}

# bench_conn_desc: how accept-bench.sh connects (ACCEPT_BENCH_RECONNECT).
bench_conn_desc() {
    if [[ $ACCEPT_BENCH_RECONNECT == 1 ]]; then
        echo "new connection per message"
    else
        echo "one connection per session (-d)"
    fi
}

# print_run_notes: the report's closing notes (scale_note, skipped and
# failed runs).
print_run_notes() {
    [[ -z $scale_note ]] || echo "$scale_note"
    ((skipped == 0)) || echo "Some runs were skipped (deadline ${DEADLINE}s); * = median of fewer than $REPEATS runs."
    ((failed == 0)) || echo "Some runs FAILED (see stderr); * = median of fewer than $REPEATS runs."
}
