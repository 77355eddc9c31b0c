#!/usr/bin/env bash
# Compare two towerpost binaries by process CPU time per accepted message:
#
#   cpu-ab.sh OLD_BIN NEW_BIN [SCRATCH_DIR]
#
# For each round (ROUNDS, 3), for each binary in turn (old, new): a fresh
# spool, a server on 127.0.0.1:PORT that parks all mail (defer_transports =
# ["smtp"], so nothing is delivered and the figure is receiving and storing
# only), then smtp-source with SESSIONS sessions sending MESSAGES messages
# of SIZE bytes.  The server's utime+stime from /proc before and after
# gives CPU per message; wall time gives msg/s.  CPU time is steadier than
# throughput on a noisy machine, which is why this exists: a regression
# check between commits, not a comparison with Postfix (compare-*.sh).
#
# Environment: PORT [2741], SESSIONS [10], MESSAGES [10000], SIZE [1024],
# ROUNDS [3].  Needs smtp-source (Debian package postfix).  Traffic stays on
# 127.0.0.1.  One line per run on stdout: binary, round, msg/s, CPU ms/msg.
set -euo pipefail
old=${1:?usage: cpu-ab.sh OLD_BIN NEW_BIN [SCRATCH_DIR]}
new=${2:?usage: cpu-ab.sh OLD_BIN NEW_BIN [SCRATCH_DIR]}
scratch=${3:-/var/tmp/cpu-ab}
PORT=${PORT:-2741}
SESSIONS=${SESSIONS:-10}
MESSAGES=${MESSAGES:-10000}
SIZE=${SIZE:-1024}
ROUNDS=${ROUNDS:-3}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
[[ -x $SMTP_SOURCE ]] || { echo "cpu-ab.sh: $SMTP_SOURCE not found (apt-get install postfix)" >&2; exit 1; }
tck=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for round in $(seq "$ROUNDS"); do
    for v in old new; do
        bin=$old; [[ $v == new ]] && bin=$new
        dir=$scratch/$v-$round
        rm -rf "$dir"; mkdir -p "$dir/spool"
        cat >"$dir/towerpost.toml" <<TOML
queue_directory = "$dir/spool"
defer_transports = ["smtp"]

[[listener]]
name = "smtp"
address = "127.0.0.1:$PORT"
tls = "none"
TOML
        "$bin" --config "$dir/towerpost.toml" serve 2>"$dir/towerpost.log" &
        pid=$!
        for _ in $(seq 100); do
            (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
            sleep 0.1
        done
        before=$(cpu_ticks "$pid")
        start=$(date +%s.%N)
        timeout 600 "$SMTP_SOURCE" -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -M bench.localhost \
            -f a@bench.localhost -t b@dest.example.test "127.0.0.1:$PORT"
        end=$(date +%s.%N)
        after=$(cpu_ticks "$pid")
        kill "$pid"; wait "$pid" 2>/dev/null || true
        accepted=$(grep -c ': client=' "$dir/towerpost.log" || true)
        ((accepted >= MESSAGES)) || { echo "cpu-ab.sh: $v round $round: only $accepted accepted" >&2; exit 1; }
        awk -v v="$v" -v r="$round" -v n="$MESSAGES" -v c=$((after - before)) -v tk="$tck" \
            -v s="$start" -v e="$end" \
            'BEGIN { printf "%s\t%d\t%.1f msg/s\t%.3f ms CPU/msg\n", v, r, n / (e - s), c / tk * 1000 / n }'
    done
done
