#!/usr/bin/env bash
# The scale run: generate a HIBP-shaped SHA-1 dump of N lines (default 1e9, about 42 GB), build
# the index from it, record wall time, peak RSS and index size, then delete dump and index.
# Needs ~45 GB free for the dump plus ~15 GB for the index. Prints one Markdown table row: put it
# in BENCHMARKS.scale.md, which scripts/bench.sh includes in BENCHMARKS.md.
#   scripts/scale-run.sh [N] [WORK_DIR]
#   scripts/scale-run.sh combolist [ROWS] [WORK_DIR] [MEM]
# The combolist form generates ROWS rows (default 1e9, ~37 GB as text; kept zstd-compressed,
# ~17 GB) and builds them twice within --mem MEM (default 1G): keeping every password, then with
# --keep-passwords-for 1,000 domains. Needs ~70 GB free (input, sorted runs, the full index).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = combolist ]; then
  rows=${2:-1000000000}
  work=${3:-scale-work}
  mem=${4:-1G}
  mkdir -p "$work"
  cargo build --release --quiet
  cargo build --release --quiet --example gendata
  t0=$(date +%s)
  target/release/examples/gendata combolist "$rows" --seed 11 | zstd -1 -T2 -q -c > "$work/combo.zst"
  t1=$(date +%s)
  text_bytes=$(zstd -dc "$work/combo.zst" | wc -c)
  for d in $(seq 5000 5999); do echo "d$d.example"; done > "$work/own-domains.txt"
  for mode in all own; do
    rm -rf "$work/idx"
    extra=()
    [ "$mode" = own ] && extra=(--keep-passwords-for "$work/own-domains.txt")
    /usr/bin/time -f "%e %M" -o "$work/time" target/release/breach-audit build --index "$work/idx" \
      --combolist "$work/combo.zst" --mem "$mem" --tmp-dir "$work" "${extra[@]}" 2> "$work/build.log"
    read -r secs rss_kb < "$work/time"
    bytes=$(du -sb "$work/idx" | cut -f1)
    addrs=$(grep -o '"addresses": [0-9]*' "$work/idx/manifest.json" | grep -o '[0-9]*$')
    phases=$(grep -o 'reading.*' "$work/build.log" | tail -1)
    echo "| $mode | $rows | $text_bytes bytes of text (zstd: $(stat -c %s "$work/combo.zst")), generated in $((t1 - t0)) s | ${secs} s ($(awk -v n="$rows" -v s="$secs" 'BEGIN { printf "%.2f", n / s / 1e6 }')M rows/s; $phases) | $((rss_kb / 1024)) MB | $bytes bytes ($(awk -v b="$bytes" -v t="${text_bytes:-0}" 'BEGIN { if (t > 0) printf "%.2f", b / t; else print "?" }')x the text), $addrs addresses |"
  done
  rm -rf "$work"
  exit 0
fi
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
