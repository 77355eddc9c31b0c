#!/usr/bin/env bash
# Memory of towerpost's rate limiter under a flood of distinct clients:
# starts towerpost with the anvil limits on for every client, floods it
# from N distinct loopback addresses (anvil-flood.py), and prints the
# server's RSS before, after, and its peak.
#
#   anvil-flood.sh SCRATCH_DIR TOWERPOST_BIN [N]   (N default 100000)
set -euo pipefail
dir=${1:?usage: anvil-flood.sh SCRATCH_DIR TOWERPOST_BIN [N]}
bin=${2:?usage: anvil-flood.sh SCRATCH_DIR TOWERPOST_BIN [N]}
n=${3:-100000}
port=${ANVIL_PORT:-2545}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
# towerpost reads TOWERPOST_* variables as configuration keys.
unexport_towerpost_vars

rm -rf "$dir" && mkdir -p "$dir"
cat >"$dir/towerpost.toml" <<TOML
queue_directory = "$dir/spool"
smtpd_client_event_limit_exceptions = []
smtpd_client_connection_rate_limit = 100
smtpd_client_message_rate_limit = 100
smtpd_forbid_unauth_pipelining = true

[[listener]]
name = "smtp"
address = "127.0.0.1:$port"
TOML
RUST_LOG=warn "$bin" --config "$dir/towerpost.toml" serve >"$dir/towerpost.log" 2>&1 </dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
rss() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
echo "before: VmRSS $(rss VmRSS) KiB"
timeout 600 python3 "$here/anvil-flood.py" "$port" "$n" 500
echo "after:  VmRSS $(rss VmRSS) KiB, peak VmHWM $(rss VmHWM) KiB"
kill "$pid"
wait "$pid" 2>/dev/null || true
trap - EXIT
