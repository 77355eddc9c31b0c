#!/usr/bin/env bash
# Send N messages over C parallel swaks workers, one new connection per
# message (how a relay's clients send), and report what came back.
#
#   swaks-load.sh [options]
#
#   -s, --server HOST:PORT   where to send                 [127.0.0.1:2525]
#   -n, --messages N         messages in all                          [100]
#   -c, --concurrency C      parallel workers                           [4]
#   -f, --from ADDR          envelope sender          [load@example.test]
#   -t, --to ADDR            recipient                [sink@example.test]
#       --size BYTES         body size                               [1024]
#       --tls                STARTTLS before MAIL (certificate not checked)
#       --tls-on-connect     implicit TLS (port 465)
#       --auth USER:PASS     AUTH PLAIN (needs TLS unless the server allows
#                            plaintext AUTH)
#       --deadline SECONDS   stop starting messages after this long     [300]
#       --timeout SECONDS    swaks' per-command timeout                  [30]
#
# While it runs, a progress line on stderr (redrawn every second on a
# terminal, one line every 5 s otherwise). At the end, on stdout:
#
#   messages: 100 sent in 4.21 s (23.8 msg/s), accepted 98, failed 2
#   reply codes:
#     250  98
#     451   2
#
# "accepted" counts messages whose end of DATA got a 2xx reply; every other
# outcome is a failure, reported under the first error reply's code, or
# under "conn" (no SMTP reply: refused, reset, timed out). Exit status 0
# when every message was accepted, 1 otherwise, 2 for a usage error.
#
# The load is bounded: N messages and the deadline. Only loopback targets
# (127.0.0.0/8, ::1, localhost) are accepted.
set -euo pipefail

PROG=${0##*/}
server=127.0.0.1:2525
messages=100
concurrency=4
from=load@example.test
to=sink@example.test
size=1024
tls=()
auth=()
deadline=300
timeout=30

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}
die() {
    echo "$PROG: $*" >&2
    exit 2
}

while (($#)); do
    case $1 in
    -s | --server) server=${2:?}; shift ;;
    -n | --messages) messages=${2:?}; shift ;;
    -c | --concurrency) concurrency=${2:?}; shift ;;
    -f | --from) from=${2:?}; shift ;;
    -t | --to) to=${2:?}; shift ;;
    --size) size=${2:?}; shift ;;
    --tls) tls=(--tls) ;;
    --tls-on-connect) tls=(--tls-on-connect) ;;
    --auth)
        a=${2:?}
        shift
        [[ $a == *:* ]] || die "--auth wants USER:PASS"
        auth=(--auth PLAIN --auth-user "${a%%:*}" --auth-password "${a#*:}")
        ;;
    --deadline) deadline=${2:?}; shift ;;
    --timeout) timeout=${2:?}; shift ;;
    -h | --help) usage ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

for v in messages concurrency size deadline timeout; do
    [[ ${!v} =~ ^[0-9]+$ ]] && ((${!v} >= 1)) || die "$v must be a positive integer: ${!v}"
done
command -v swaks >/dev/null || die "swaks is not installed (apt-get install swaks)"
[[ $server =~ ^(.+):([0-9]+)$ ]] || die "--server must be HOST:PORT: $server"
host=${BASH_REMATCH[1]}
port=${BASH_REMATCH[2]}
host=${host#[}
host=${host%]}
if ! [[ $host =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ || $host == localhost || $host == ::1 ]]; then
    die "refusing non-loopback host $host: load tests stay on this machine (127.0.0.0/8, ::1)"
fi
((concurrency <= messages)) || concurrency=$messages

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

body=$(head -c "$size" /dev/zero | tr '\0' 'x' | fold -w 76)
printf '%s\n' "$body" >"$work/body"
start=$(date +%s.%N)
stop_at=$(($(date +%s) + deadline))

# One message: prints its outcome, the final reply code (2xx accepted) or
# the first error's code, or "conn".
send_one() {
    local out rc=0
    out=$(swaks --server "$host" --port "$port" --from "$from" --to "$to" \
        --helo load.localhost --timeout "$timeout" --body "@$work/body" \
        "${tls[@]}" "${auth[@]}" 2>&1) || rc=$?
    if ((rc == 0)); then
        # The reply after the lone "." that ends DATA.
        awk '/^ *[-~]> \.$/ {dot = 1; next}
             dot && /^ *<[-~] *[0-9][0-9][0-9]/ {sub(/^ *<[-~] */, ""); print substr($0, 1, 3); exit}' \
            <<<"$out" | grep . || echo 250
    else
        # swaks marks an error reply "<**", or "<~*" under TLS.
        awk '/^ *<(\*\*|~\*) *[0-9][0-9][0-9]/ {sub(/^ *<(\*\*|~\*) */, ""); print substr($0, 1, 3); f = 1; exit}
             END {if (!f) print "conn"}' <<<"$out"
    fi
}

# Worker W sends messages W, W+C, W+2C, ... until N or the deadline.
worker() {
    local w=$1 i
    for ((i = w; i < messages; i += concurrency)); do
        (($(date +%s) < stop_at)) || break
        send_one >>"$work/codes.$w"
    done
}

for ((w = 0; w < concurrency; w++)); do
    : >"$work/codes.$w"
    worker "$w" &
    pids+=($!)
done

progress() {
    local done ok
    done=$(cat "$work"/codes.* | wc -l)
    ok=$(cat "$work"/codes.* | grep -c '^2' || true)
    printf 'sent %d/%d, accepted %d, failed %d' "$done" "$messages" "$ok" $((done - ok))
}
running() {
    local p
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done
    return 1
}
tick=0
while running; do
    sleep 0.2
    tick=$((tick + 1))
    if [[ -t 2 ]] && ((tick % 5 == 0)); then
        printf '\r\033[K%s' "$(progress)" >&2
    elif ((tick % 25 == 0)); then
        echo "$PROG: $(progress)" >&2
    fi
done
wait "${pids[@]}" 2>/dev/null || true
[[ -t 2 ]] && printf '\r\033[K' >&2
end=$(date +%s.%N)

cat "$work"/codes.* >"$work/all"
sent=$(wc -l <"$work/all")
accepted=$(grep -c '^2' "$work/all" || true)
failed=$((sent - accepted))
awk -v n="$sent" -v ok="$accepted" -v t0="$start" -v t1="$end" 'BEGIN {
    t = t1 - t0; if (t <= 0) t = 1e-9
    printf "messages: %d sent in %.2f s (%.1f msg/s), accepted %d, failed %d\n", n, t, n / t, ok, n - ok
}'
echo "reply codes:"
sort "$work/all" | uniq -c | awk '{printf "  %-5s %d\n", $2, $1}'
if ((sent < messages)); then
    echo "$PROG: the deadline (${deadline}s) stopped the run after $sent of $messages messages" >&2
fi
((failed == 0 && sent == messages))
