#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60) with cargo-fuzz (libFuzzer).
#   cargo install cargo-fuzz && scripts/fuzz.sh 300
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
# New crashes land in fuzz/artifacts/<target>/; seeds are committed in fuzz/corpus/<target>/seed-*.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
for t in hibp_line combolist_line scheme account_stores index_open; do
  echo "== $t ($secs s)" >&2
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" -- -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 2>&1 \
    | grep -E "^#[0-9]+.*(DONE|pulse)|ERROR|panicked|SUMMARY|Done" | tail -n 3
done
