#!/usr/bin/env bash
# towerpost and Postfix side by side on this machine, in one run, one table:
#
#   compare.sh SCRATCH_DIR TOWERPOST_BIN [--write FILE]
#
# Runs, alternating the two servers run by run, each with a loopback-only
# configuration and a shared sink (see README.md for each driver):
#
#   1. accepted msg/s at 1, 10 and 50 sessions, one new connection per
#      message (compare-accept.sh, ACCEPT_BENCH_RECONNECT=1), and
#   2. the same with each session reusing its connection (smtp-source -d);
#   3. end-to-end relay msg/s at 1, 10 and 50 sessions, one connection per
#      message (compare-relay.sh), with the CPU seconds of all the server's
#      processes per 10,000 relayed messages and their peak memory (both at
#      10 sessions);
#   4. ETRN latency: from "ETRN customer.test" until the last of 100 parked
#      messages is delivered, among 2,000 and among 200,000 other parked
#      messages (compare-flush.sh; a Postfix fill that would take more than
#      POSTFIX_MAX_FILL seconds is scaled down, and the table says so);
#   5. memory with 10,000 idle connections (idle-conns.py): each server
#      with its defaults, after every connection is open and, as far as the
#      server greets them, greeted; and 15 s after they all closed.
#
# Medians of 3 runs (REPEATS, ROUNDS) throughout. The table goes to stdout
# with a description of the machine, progress to stderr, each driver's own
# table and log to SCRATCH_DIR/compare/. With --write FILE the table also
# replaces the part of FILE between "<!-- compare.sh:begin -->" and
# "<!-- compare.sh:end -->" (appended if FILE has no such part); the
# repository's copy is docs/benchmarks.md.
#
# Environment: REPEATS [3], IDLE_CONNECTIONS [10000], POSTFIX_MAX_FILL [600],
# STEPS [accept-new accept-reuse relay flush idle] (a subset re-runs those
# steps and reports the others from the last run in SCRATCH_DIR),
# QUICK=1 (everything once and small: a check that the run works, in a few
# minutes; the numbers mean nothing), and every driver's own variables. Needs root (Postfix instances). Takes
# 30 to 60 minutes on 2 cores. All traffic goes to 127.0.0.1 only.
set -euo pipefail
export LC_ALL=C

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd -P)
INSTANCE=$HERE/postfix-instance.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

write=
args=()
while (($#)); do
    case $1 in
    --write) write=${2:?--write needs a file}; shift ;;
    *) args+=("$1") ;;
    esac
    shift
done
((${#args[@]} == 2)) || usage "SCRATCH_DIR TOWERPOST_BIN [--write FILE]"
scratch=${args[0]}
TOWERPOST_BIN=${args[1]}
# QUICK=1: everything once, small: checks that the whole run works on a
# machine in a few minutes; its numbers mean nothing.
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    : "${REPEATS:=1}" "${IDLE_CONNECTIONS:=500}"
    accept_counts=(MESSAGES_1=200 MESSAGES_10=500 MESSAGES_50=500)
    relay_counts=(MESSAGES_1=200 MESSAGES_10=500 MESSAGES_50=500)
    flush_counts=(TOWERPOST_COUNTS="200 2000" POSTFIX_COUNTS="200 2000")
else
    accept_counts=()
    relay_counts=(MESSAGES_1=3000 MESSAGES_10=10000 MESSAGES_50=10000)
    flush_counts=(TOWERPOST_COUNTS="2000 200000" POSTFIX_COUNTS="2000 200000")
fi
REPEATS=${REPEATS:-3}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
POSTFIX_MAX_FILL=${POSTFIX_MAX_FILL:-600}
POSTFIX_PORT=${POSTFIX_PORT:-2545}
TOWERPOST_PORT=${TOWERPOST_PORT:-2546}
SETTLE=${SETTLE:-1}
PYTHON=${PYTHON:-python3}

require_root "Postfix instances"
require_postfix_tool /usr/sbin/smtp-source smtp-source
require_bash5
check_uint_vars "an integer" REPEATS IDLE_CONNECTIONS POSTFIX_MAX_FILL
resolve_towerpost_bin
# This script's TOWERPOST_BIN, or a developer's TOWERPOST_* setting, must
# not reach the servers under test (see lib.sh).
unexport_towerpost_vars
[[ -z $write || -f $write ]] || die "--write: no such file: $write"
make_scratch "$scratch"
scratch_fstype
out=$scratch/compare
mkdir -p "$out"

pf_dir=
tp_pid=
sink_pids=()
idle_pid=
cleanup() {
    [[ -z $idle_pid ]] || kill "$idle_pid" 2>/dev/null || true
    stop_servers
}
set_cleanup_traps

failures=()
STEPS=${STEPS:-accept-new accept-reuse relay flush idle}
# wanted NAME: whether STEPS names the step.
wanted() { [[ " $STEPS " == *" $1 "* ]]; }
# step NAME COMMAND...: run one driver, its table to out/NAME.md and its
# log to out/NAME.log; a failure is noted and the other steps go on.
step() {
    local name=$1
    shift
    wanted "$name" || { log "== $name: not in STEPS, keeping $out/$name.md"; return 0; }
    log "== $name: $* (log: $out/$name.log)"
    if ! "$@" >"$out/$name.md" 2>"$out/$name.log"; then
        failures+=("$name")
        log "$name FAILED; its log ends:"
        tail -n 15 "$out/$name.log" >&2 || true
    fi
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
step accept-new env ACCEPT_BENCH_RECONNECT=1 REPEATS="$REPEATS" "${accept_counts[@]}" \
    "$HERE/compare-accept.sh" "$scratch/accept-new" "$TOWERPOST_BIN"
step accept-reuse env ACCEPT_BENCH_RECONNECT=0 REPEATS="$REPEATS" "${accept_counts[@]}" \
    "$HERE/compare-accept.sh" "$scratch/accept-reuse" "$TOWERPOST_BIN"
step relay env ACCEPT_BENCH_RECONNECT=1 REPEATS="$REPEATS" SESSIONS_LIST="1 10 50" \
    "${relay_counts[@]}" DEADLINE=1500 \
    "$HERE/compare-relay.sh" "$scratch/relay" "$TOWERPOST_BIN"
step flush env ROUNDS="$REPEATS" "${flush_counts[@]}" \
    POSTFIX_MAX_FILL="$POSTFIX_MAX_FILL" "$HERE/compare-flush.sh" "$scratch/flush" "$TOWERPOST_BIN"

# --- 5. idle connections ---------------------------------------------------------
# idle_one SERVER: sets IDLE_BEFORE, IDLE_HELD, IDLE_AFTER ("RSS PSS" KiB)
# and IDLE_INFO (idle-conns.py's line).
idle_one() {
    local server=$1 dir port ready i
    dir=$scratch/idle-$server
    rm -rf "$dir"
    mkdir -p "$dir"
    if [[ $server == postfix ]]; then
        port=$POSTFIX_PORT
        start_postfix_instance "$dir" accept || return 1
    else
        port=$TOWERPOST_PORT
        towerpost_prepare "$dir" port_busy || return 1
        {
            echo "queue_directory = \"$dir/spool\""
            # Every connection gets a session (the default is 500).
            echo "smtpd_session_limit = 0"
            towerpost_listener_toml
        } >"$dir/towerpost.toml"
        towerpost_launch "$dir" port_busy --config "$dir/towerpost.toml" serve || return 1
    fi
    sleep 2
    IDLE_BEFORE=$(mem_kib "$server")
    ready=$dir/ready
    "$PYTHON" "$HERE/idle-conns.py" 127.0.0.1 "$port" "$IDLE_CONNECTIONS" "$ready" \
        --hold 120 --connect-timeout 90 &
    idle_pid=$!
    for ((i = 0; i < 1000; i++)); do
        [[ -s $ready ]] && break
        sleep 0.1
    done
    IDLE_INFO=$(cat "$ready" 2>/dev/null || echo "idle-conns.py did not report")
    IDLE_HELD="0 0"
    local r p hr=0 hp=0
    for i in 1 2 3; do
        read -r r p < <(mem_kib "$server")
        ((r > hr)) && hr=$r
        ((p > hp)) && hp=$p
        sleep 1
    done
    IDLE_HELD="$hr $hp"
    kill "$idle_pid" 2>/dev/null || true
    wait "$idle_pid" 2>/dev/null || true
    idle_pid=
    sleep 15
    IDLE_AFTER=$(mem_kib "$server")
    if [[ $server == postfix ]]; then stop_postfix; else stop_towerpost; fi
    log "idle $server: $IDLE_INFO; RSS/PSS KiB before $IDLE_BEFORE, held $IDLE_HELD, 15 s after $IDLE_AFTER"
}
declare -A IDLE
idle_file=$out/idle.tsv
wanted idle || log "== idle: not in STEPS, keeping $idle_file"
wanted idle && log "== idle: $IDLE_CONNECTIONS idle connections per server" && : >"$idle_file"
for server in postfix towerpost; do
    wanted idle || break
    settle
    if idle_one "$server" 2>>"$out/idle.log"; then
        IDLE[$server,before]=$IDLE_BEFORE
        IDLE[$server,held]=$IDLE_HELD
        IDLE[$server,after]=$IDLE_AFTER
        IDLE[$server,info]=$IDLE_INFO
        printf '%s\t%s\t%s\t%s\t%s\n' "$server" "$IDLE_BEFORE" "$IDLE_HELD" "$IDLE_AFTER" \
            "$IDLE_INFO" >>"$idle_file"
    else
        failures+=("idle-$server")
        stop_servers
    fi
done

# A run of other steps reports the idle step's last results.
if ! wanted idle && [[ -s $idle_file ]]; then
    while IFS=$'\t' read -r server before held after info; do
        IDLE[$server,before]=$before
        IDLE[$server,held]=$held
        IDLE[$server,after]=$after
        IDLE[$server,info]=$info
    done <"$idle_file"
fi

# --- the table -------------------------------------------------------------------
# cell FILE KEY COLUMN: the COLUMN-th cell (1-based, after the leading "|")
# of the Markdown row of FILE whose first cell is KEY.
cell() {
    awk -F'|' -v k="$2" -v c="$3" '{ gsub(/^ +| +$/, "", $2) } $2 == k {
        v = $(c + 1); gsub(/^ +| +$/, "", v); print v; exit }' "$1" 2>/dev/null
}
# flush_cell SERVER OTHERS: the ETRN latency cell of compare-flush.sh's table.
flush_cell() {
    awk -F'|' -v s="$1" -v n="$2" '{ for (i = 2; i <= 4; i++) gsub(/^ +| +$/, "", $i) }
        $2 == s && $3 == n { print $4; exit }' "$out/flush.md" 2>/dev/null
}
# adv HIGHER_IS_BETTER P T: towerpost's advantage as "N.NN×".
adv() {
    awk -v h="$1" -v p="${2//[^0-9.]/}" -v t="${3//[^0-9.]/}" 'BEGIN {
        if (p == "" || t == "" || p + 0 == 0 || t + 0 == 0) { print "n/a"; exit }
        printf "%.2f×\n", (h ? t / p : p / t) }'
}
# relay_median SERVER COLUMN: the median over the 10-session relay runs of
# a results.tsv column (by name).
relay_median() {
    awk -F'\t' -v s="$1" -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        $1 == s && $2 == 10 && $3 != "pilot" && $c != "-" { print $c }' \
        "$scratch/relay/results.tsv" 2>/dev/null | median 2
}
first() { echo "${1%% *}"; }
second() { [[ $1 == *" "* ]] && echo "${1#* }"; }
mib() { awk -v k="$1" 'BEGIN { if (k == "") print "n/a"; else printf "%.1f MiB\n", k / 1024 }'; }

row() { echo "| $1 | $2 | $3 | $4 |"; }
table() {
    echo "| measurement | Postfix | towerpost | towerpost's advantage |"
    echo "|---|---:|---:|---:|"
    local s p t how
    for how in new reuse; do
        for s in 1 10 50; do
            p=$(cell "$out/accept-$how.md" "$s" 3)
            t=$(cell "$out/accept-$how.md" "$s" 4)
            if [[ $how == new ]]; then
                row "accepted msg/s, $s session(s), new connection per message" "${p:-n/a}" "${t:-n/a}" "$(adv 1 "$p" "$t")"
            else
                row "accepted msg/s, $s session(s), connection reused (smtp-source -d)" "${p:-n/a}" "${t:-n/a}" "$(adv 1 "$p" "$t")"
            fi
        done
    done
    for s in 1 10 50; do
        p=$(cell "$out/relay.md" "$s" 3)
        t=$(cell "$out/relay.md" "$s" 4)
        row "end-to-end relay msg/s, $s session(s), new connection per message" "${p:-n/a}" "${t:-n/a}" "$(adv 1 "$p" "$t")"
    done
    local n shown
    for n in ${flush_counts[0]#*=}; do
        shown=$(sed -E ':a; s/([0-9])([0-9]{3})($|,)/\1,\2\3/; ta' <<<"$n")
        p=$(flush_cell Postfix "$n")
        t=$(flush_cell towerpost "$n")
        if [[ -z $p && $n == "${flush_counts[1]##* }" ]]; then
            # A Postfix fill scaled down to fit POSTFIX_MAX_FILL: its
            # largest setup, named.
            local last
            last=$(awk -F'|' '{ gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); gsub(/^ +| +$/, "", $4) }
                $2 == "Postfix" { n = $3; v = $4 } END { if (n != "") print v " (" n " others)" }' "$out/flush.md" 2>/dev/null)
            p=$last
        fi
        row "ETRN → last of 100 parked messages delivered, $shown others parked" "${p:-n/a}" "${t:-n/a}" "$(adv 0 "${p%% (*}" "$t")"
    done
    local pc tc
    pc=$(relay_median postfix cpu_seconds || true)
    tc=$(relay_median towerpost cpu_seconds || true)
    local pm tm
    pm=$(awk -F'\t' 'NR > 1 && $1 == "postfix" && $2 == 10 && $3 != "pilot" { print $4 }' "$scratch/relay/results.tsv" 2>/dev/null | head -n 1)
    tm=$(awk -F'\t' 'NR > 1 && $1 == "towerpost" && $2 == 10 && $3 != "pilot" { print $4 }' "$scratch/relay/results.tsv" 2>/dev/null | head -n 1)
    per10k() { awk -v c="$1" -v m="$2" 'BEGIN { if (c == "" || m == "" || m == 0) print "n/a"; else printf "%.2f s\n", c / m * 10000 }'; }
    p=$(per10k "$pc" "$pm")
    t=$(per10k "$tc" "$tm")
    row "CPU seconds per 10,000 relayed messages, 10 sessions, all processes" "$p" "$t" "$(adv 0 "$p" "$t")"
    p=$(mib "$(relay_median postfix all_peak_rss_kib || true)")
    t=$(mib "$(relay_median towerpost all_peak_rss_kib || true)")
    row "peak RSS while relaying, 10 sessions, all processes" "$p" "$t" "$(adv 0 "$p" "$t")"
    p=$(mib "$(relay_median postfix all_peak_pss_kib || true)")
    t=$(mib "$(relay_median towerpost all_peak_pss_kib || true)")
    row "peak PSS (shared pages split) while relaying, 10 sessions" "$p" "$t" "$(adv 0 "$p" "$t")"
    local held
    for server in postfix towerpost; do
        held=${IDLE[$server,held]:-}
        IDLE[$server,rss]=$(mib "$(first "$held")")
    done
    row "RSS with $IDLE_CONNECTIONS idle connections, all processes" "${IDLE[postfix,rss]}" "${IDLE[towerpost,rss]}" \
        "$(adv 0 "${IDLE[postfix,rss]}" "${IDLE[towerpost,rss]}")"
    for server in postfix towerpost; do
        held=${IDLE[$server,held]:-}
        IDLE[$server,pss]=$(mib "$(second "$held")")
    done
    row "PSS with $IDLE_CONNECTIONS idle connections" "${IDLE[postfix,pss]}" "${IDLE[towerpost,pss]}" \
        "$(adv 0 "${IDLE[postfix,pss]}" "${IDLE[towerpost,pss]}")"
}

machine() {
    local cpu mem commit pfv
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
    pfv=$(postconf -d -h mail_version 2>/dev/null || echo unknown)
    commit=$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if ! git -C "$HERE" diff --quiet HEAD 2>/dev/null; then commit="$commit (with local changes)"; fi
    local steps=
    [[ $STEPS == "accept-new accept-reuse relay flush idle" ]] || steps=" (this run: $STEPS; the other steps from earlier runs in the same scratch directory)"
    echo "Measured $started$steps by \`deploy/loadtest/compare.sh\` on $(nproc) × ${cpu:-unknown CPU}, $mem RAM," \
        "$(uname -sr), queues on $fstype; Postfix $pfv; towerpost $("$TOWERPOST_BIN" --version 2>/dev/null | awk '{ print $2 }')" \
        "at commit $commit. Medians of $REPEATS runs; 1 KiB messages."
}

notes() {
    echo
    echo "* Each server runs with its defaults except what loopback testing needs (see"
    echo "  deploy/loadtest/README.md); Postfix holds accepted mail in \`hold\` for the"
    echo "  acceptance rows, both relay to one \`smtp-sink\` for the relay rows."
    echo "* CPU: user + system time of every process of the server during the measured"
    echo "  run (Postfix's exited children through the master's cutime/cstime), divided by"
    echo "  the messages relayed. Memory: sampled every 0.5 s, summed over processes;"
    echo "  RSS counts shared pages (libc, the binaries) once per Postfix process, PSS"
    echo "  splits them between the processes that share them."
    echo "* Idle connections: ${IDLE[postfix,info]:-n/a} (Postfix); ${IDLE[towerpost,info]:-n/a} (towerpost)."
    echo "  Postfix serves at most \`default_process_limit\` (100) sessions at once; the"
    echo "  rest wait in its listen queue or fail to connect. towerpost runs with"
    echo "  \`smtpd_session_limit = 0\` here (its default, 500, would refuse the rest). RSS 15 s after the"
    echo "  connections closed: Postfix $(mib "$(first "${IDLE[postfix,after]:-}")"), towerpost $(mib "$(first "${IDLE[towerpost,after]:-}")")."
    local note
    note=$(grep -h -i 'scaled' "$out"/*.md 2>/dev/null | head -n 3 || true)
    [[ -z $note ]] || echo "* $note"
    if ((${#failures[@]} > 0)); then
        echo "* FAILED steps (their cells say n/a): ${failures[*]}; logs in $out."
    fi
}

report=$out/table.md
{
    machine
    echo
    table
    notes
} >"$report"
cat "$report"

if [[ -n $write ]]; then
    begin='<!-- compare.sh:begin -->'
    end='<!-- compare.sh:end -->'
    if grep -qF "$begin" "$write"; then
        awk -v b="$begin" -v e="$end" -v f="$report" '
            $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
            $0 == e { skip = 0 }
            !skip' "$write" >"$write.tmp"
    else
        { cat "$write"; echo; echo "$begin"; cat "$report"; echo "$end"; } >"$write.tmp"
    fi
    mv "$write.tmp" "$write"
    log "table written into $write"
fi
((${#failures[@]} == 0))
