#!/usr/bin/env bash
# The scale run: generate a HIBP-shaped SHA-1 dump of N lines (default 1e9, about 42 GB), build
# the index from it, record wall time, peak RSS and index size, then delete dump and index.
# Needs ~45 GB free for the dump plus ~15 GB for the index. Prints one Markdown table row: put it
# in BENCHMARKS.scale.md, which scripts/bench.sh includes in BENCHMARKS.md.
#   scripts/scale-run.sh [N] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000000}
work=${2:-scale-work}
mkdir -p "$work"
cargo build --release --quiet
cargo build --release --quiet --example gendata
t0=$(date +%s)
target/release/examples/gendata hibp "$n" --seed 11 > "$work/dump.txt"
t1=$(date +%s)
/usr/bin/time -f "%e %M" -o "$work/time" target/release/breach-audit build -q --index "$work/idx" --hibp "$work/dump.txt"
read -r secs rss_kb < "$work/time"
bytes=$(stat -c %s "$work/idx/sha1.map")
dump_bytes=$(stat -c %s "$work/dump.txt")
rm -f "$work/dump.txt"
echo "| $n | $((dump_bytes / 1000000000)) GB, generated in $((t1 - t0)) s | ${secs} s ($(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.2f", n / s / 1e6 }')M lines/s) | $((rss_kb / 1024)) MB | $(awk -v b="$bytes" -v n="$n" 'BEGIN { printf "%.2f", b / n }') bytes/hash ($((bytes / 1000000)) MB) |"
rm -rf "$work"
