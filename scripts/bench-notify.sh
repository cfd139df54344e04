#!/usr/bin/env bash
# Time to render notices and hand them to the outbox transport, on a generated DirectAdmin tree
# with about 10,000 owners that have leaked accounts; writes the "Notices" section of
# BENCHMARKS.md (replacing an older one). Called by scripts/bench.sh; runs alone too.
#
#   scripts/bench-notify.sh [ACCOUNTS=700000]      (ACCOUNTS/50 owners, 3% of accounts leaked)
set -euo pipefail
cd "$(dirname "$0")/.."
V=${1:-700000}
work=${BENCH_DIR:-bench-work}/notify
rm -rf "$work"; mkdir -p "$work"
cargo build --release --quiet
cargo build --release --quiet --example gendata
ba=target/release/breach-audit
target/release/examples/gendata directadmin "$V" "$work/da" --leaked 0.03 > "$work/combo.txt"
cat > "$work/audit.toml" <<TOML
index = "idx"
state = "state"
out = "out"
combolist = ["combo.txt"]
directadmin = ["da"]
[notify]
from = "Example Hosting Security <security@isp.example>"
operator = "postmaster@isp.example"
via = "outbox"
outbox = "outbox"
TOML
"$ba" audit --config "$work/audit.toml" --quiet || [ $? -eq 1 ]
pending=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from notices where status='pending'\").fetchone()[0])" "$work/state/breach-audit.sqlite")
t0=$(date +%s%N)
/usr/bin/time -f "%M" -o "$work/rss" "$ba" notify --config "$work/audit.toml" --quiet
t1=$(date +%s%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
sent=$(find "$work/outbox" -name 'breach-audit.[0-9]*.eml' | wc -l)
bytes=$(du -sb "$work/outbox" | cut -f1)
rss=$(awk '{ printf "%.0f", $1 / 1024 }' "$work/rss")
per=$(awk -v s="$secs" -v n="$sent" 'BEGIN { printf "%.0f", n / s }')
section="## Notices

\`breach-audit notify --via outbox\` on the state of an audit of a generated DirectAdmin tree
(\`gendata directadmin $V\`, $((V / 50)) owners, 3% of accounts in a combolist): **$sent notices
rendered (minijinja), built (lettre) and handed to the outbox in ${secs}s** ($per/s, one .eml
each, fsynced and renamed, plus one commit to the state database per notice; $bytes bytes;
peak RSS $rss MB). Pending before the run: $pending. (\`scripts/bench-notify.sh $V\`.)"
python3 - "$section" <<'PY'
import sys, re
p = "BENCHMARKS.md"
s = open(p).read()
s = re.sub(r"\n## Notices\n.*?(?=\n## |\Z)", "", s, flags=re.S)
open(p, "w").write(s.rstrip("\n") + "\n\n" + sys.argv[1] + "\n")
PY
echo "$section" >&2
rm -rf "$work"
