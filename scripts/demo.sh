#!/usr/bin/env bash
# Build an index from the bundled sample dumps and combolists, print the at-risk accounts of the
# bundled account stores, then the breached addresses of one domain (JSONL on stdout, summaries on
# stderr). Usage: scripts/demo.sh [INDEX_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: compiling breach-audit (the first run takes a few minutes) ..." >&2
cargo build --release --quiet
echo "demo: building an index from sample-data/ ..." >&2
ba=target/release/breach-audit
index=${1:-target/sample-index}
"$ba" build --index "$index" \
  --hibp sample-data/hibp/pwned-passwords-sha1.txt \
  --hibp sample-data/hibp/pwned-passwords-ntlm.txt.gz \
  --hibp sample-data/hibp/extra-by-prevalence.txt.zst \
  --hibp sample-data/hibp/ranges \
  --combolist sample-data/combolists/collection-sample.txt \
  --combolist sample-data/combolists/more.txt.gz \
  --combolist sample-data/combolists/third.txt.zst
echo "demo: the at-risk accounts (JSONL on stdout):" >&2
# check exits 1 when accounts are at risk, which is what the sample data is for.
"$ba" check --index "$index" \
  --accounts-csv sample-data/accounts/export.csv \
  --passwd-file sample-data/accounts/dovecot-users || test $? -eq 1
echo "demo: every breached address at example.org:" >&2
# Every breached address of one customer's domain (and its subdomains).
"$ba" domain --index "$index" example.org --subdomains || test $? -eq 1
