#!/usr/bin/env bash
# Measure SMTP acceptance throughput with Postfix's smtp-source(1).
#
#   accept-bench.sh HOST:PORT SESSIONS MESSAGES [SIZE]
#
# Sends MESSAGES messages (SIZE payload bytes each, default 1024) over
# SESSIONS parallel SMTP sessions and prints exactly one line on stdout:
#
#   sessions=S messages=M size=B seconds=T msg_per_s=R
#
# On a terminal, smtp-source's running count of messages goes to stderr
# while it runs.
#
# Exits non-zero if smtp-source fails (connection refused, any unexpected
# SMTP reply, or the time limit).  smtp-source stops by itself after MESSAGES
# messages; the whole run is additionally capped by `timeout`.
#
# Environment:
#   ACCEPT_BENCH_TIMEOUT    seconds before smtp-source is killed (default 600)
#   ACCEPT_BENCH_RECONNECT  1 = one connection per message (smtp-source
#                           without -d); default 0 = each session sends
#                           message after message on one connection (-d)
#   ACCEPT_BENCH_EXTRA      extra smtp-source flags, word-split (e.g. "-N")
set -euo pipefail

PROG=${0##*/}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

[[ $# -eq 3 || $# -eq 4 ]] ||
    { echo "usage: $PROG HOST:PORT SESSIONS MESSAGES [SIZE]" >&2; exit 2; }

target=$1
sessions=$2
messages=$3
size=${4:-1024}
limit=${ACCEPT_BENCH_TIMEOUT:-600}
reconnect=${ACCEPT_BENCH_RECONNECT:-0}

for v in sessions messages size limit; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer: ${!v}"
done
((sessions >= 1)) || die "SESSIONS must be >= 1"
((messages >= 1)) || die "MESSAGES must be >= 1"
((limit >= 1)) || die "ACCEPT_BENCH_TIMEOUT must be >= 1"

[[ $target =~ ^(.+):([0-9]+)$ ]] || die "target must be HOST:PORT: $target"
host=${BASH_REMATCH[1]}
# Load goes to this machine only.
case $host in
127.* | localhost | '[::1]') ;;
*) die "refusing non-loopback host $host: load tests target 127.0.0.0/8 or [::1] only" ;;
esac

[[ -x $SMTP_SOURCE ]] || die "$SMTP_SOURCE not found (apt-get install postfix)"

# -s/-m: parallel sessions / total messages.  -l: payload bytes (excluding
# the From/To/Date/Message-Id headers smtp-source adds).  -M: HELO name (and
# default domain) independent of the machine's hostname.  -C 3: retry a
# connect that gets RST because the listen queue is full.  -c (the running
# counter) only on a terminal, see below.  smtp-source never pipelines
# commands.
args=(-s "$sessions" -m "$messages" -l "$size" -M bench.localhost
    -f bench@example.test -t sink@example.test -C 3)
[[ $reconnect == 1 ]] || args+=(-d)
if [[ -n ${ACCEPT_BENCH_EXTRA:-} ]]; then
    read -r -a extra <<<"$ACCEPT_BENCH_EXTRA"
    args+=("${extra[@]}")
fi

start=$(date +%s.%N)
rc=0
if [[ -t 2 ]]; then
    # On a terminal: smtp-source's running counter (-c), on stderr so that
    # stdout keeps its one result line.
    timeout --kill-after=10 "$limit" "$SMTP_SOURCE" -c "${args[@]}" "$target" >&2 || rc=$?
    echo >&2
else
    timeout --kill-after=10 "$limit" "$SMTP_SOURCE" "${args[@]}" "$target" || rc=$?
fi
end=$(date +%s.%N)

if ((rc != 0)); then
    if ((rc == 124 || rc == 137)); then
        die "smtp-source timed out after ${limit}s"
    fi
    die "smtp-source failed with exit status $rc"
fi

awk -v s="$sessions" -v m="$messages" -v b="$size" -v t0="$start" -v t1="$end" '
BEGIN {
    t = t1 - t0
    if (t <= 0) t = 1e-9
    printf "sessions=%d messages=%d size=%d seconds=%.3f msg_per_s=%.1f\n",
        s, m, b, t, m / t
}'
