#!/usr/bin/env bash
# Soak: a steady load for DURATION seconds (default 600) through towerpost
# to a next hop that answers 250/4xx/5xx in proportions (soak-sink.py),
# sampling the server's RSS, open fds and queue size every SAMPLE seconds.
# Prints the samples as they come and a summary (first, last, max); with
# a flat memory and fd line and a queue that does not grow without bound,
# the server passed. Loopback only; bounded in time.
#
#   deploy/loadtest/soak.sh [DURATION] [RATE msg/s] [SAMPLE s]
#
# Needs: a release build (cargo build --release), smtp-source (Debian
# postfix), python3-aiosmtpd.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-600}
RATE=${2:-50}
SAMPLE=${3:-5}
BIN=${TOWERPOST_BIN:-target/release/towerpost}
SMTP_PORT=${SMTP_PORT:-2525}
SINK_PORT=${SINK_PORT:-2526}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v smtp-source >/dev/null || { echo "smtp-source missing (apt-get install postfix)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/towerpost-soak.XXXXXX)
cleanup() {
  # The load loop's smtp-source first, then the loop, the server, the sink.
  if [ -n "${load_pid:-}" ]; then pkill -P "$load_pid" 2>/dev/null || true; fi
  kill "${load_pid:-}" "${server_pid:-}" "${sink_pid:-}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

"${PYTHON:-/usr/bin/python3}" deploy/loadtest/soak-sink.py --port "$SINK_PORT" > "$work/sink.log" 2>&1 &
sink_pid=$!
cat > "$work/towerpost.toml" <<CONF
myhostname = "soak.towerpost.test"
queue_directory = "$work/spool"
mynetworks = ["127.0.0.0/8"]
relayhost = "[127.0.0.1]:$SINK_PORT"
# Deferred mail comes back soon, so that retries are part of the load.
minimal_backoff_time = "10s"
maximal_backoff_time = "60s"
queue_run_delay = "10s"

[[listener]]
name = "smtp"
address = "127.0.0.1:$SMTP_PORT"
tls = "none"
CONF
"$BIN" --config "$work/towerpost.toml" serve > "$work/towerpost.log" 2>&1 &
server_pid=$!
listening=0
for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/$SMTP_PORT) 2>/dev/null; then listening=1; break; fi
  sleep 0.1
done
if [ "$listening" = 0 ]; then
  echo "towerpost did not start listening on 127.0.0.1:$SMTP_PORT:" >&2
  tail -20 "$work/towerpost.log" >&2
  exit 1
fi

# The load: every second, RATE messages of 1 KiB over 5 sessions, a new
# connection per message as a relay sees it.
(
  end=$((SECONDS + DURATION))
  while [ $SECONDS -lt $end ]; do
    smtp-source -c -s 5 -m "$RATE" -l 1024 -f soak@client.test -t "rcpt@example.test" \
      127.0.0.1:"$SMTP_PORT" >/dev/null 2>&1 || true
    sleep 1
  done
) &
load_pid=$!

echo "seconds,rss_kib,fds,queued" | tee "$work/samples.csv"
start=$SECONDS
while kill -0 "$load_pid" 2>/dev/null; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "towerpost exited during the soak:" >&2
    tail -20 "$work/towerpost.log" >&2
    exit 1
  fi
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" || echo -1)
  fds=$(ls "/proc/$server_pid/fd" 2>/dev/null | wc -l || echo -1)
  # One failed sample is a missing number, not the end of the run.
  queued=$("$BIN" --config "$work/towerpost.toml" queue list --json 2>/dev/null | wc -l || echo -1)
  echo "$((SECONDS - start)),$rss,$fds,$queued" | tee -a "$work/samples.csv"
  sleep "$SAMPLE"
done
sent=$(grep -c 'status=sent' "$work/towerpost.log" || true)
bounced=$(grep -c 'status=bounced' "$work/towerpost.log" || true)
deferred=$(grep -c 'status=deferred' "$work/towerpost.log" || true)
panics=$(grep -c 'panicked' "$work/towerpost.log" || true)
echo
echo "deliveries: sent=$sent deferred=$deferred bounced=$bounced; panics=$panics"
awk -F, 'NR == 2 {f1=$2; f2=$3; f3=$4} NR > 1 {if ($2>m1) m1=$2; if ($3>m2) m2=$3; if ($4>m3) m3=$4; l1=$2; l2=$3; l3=$4}
  END {printf "rss_kib first %d last %d max %d\nfds first %d last %d max %d\nqueued first %d last %d max %d\n", f1,l1,m1,f2,l2,m2,f3,l3,m3}' "$work/samples.csv"
echo "samples and logs: $work"
