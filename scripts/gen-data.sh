#!/usr/bin/env bash
# Generate realistic benchmark data (fast: ~15M lines/s).
#   scripts/gen-data.sh hibp LINES [--ntlm] [--unsorted] [--crlf] [--seed S] > dump.txt
#   scripts/gen-data.sh accounts COUNT DUMP_LINES [--hit-rate R] [--ntlm] [--seed S] > accounts.csv
# Accounts name hashes of the dump generated with the same LINES and seed, at the given hit rate.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --example gendata
exec target/release/examples/gendata "$@"
