#!/usr/bin/env bash
# The operator's page of a sample state, rendered by headless Chromium (tests/page.rs uses this;
# docs/report.png is its screenshot):
#
#   scripts/sample-page.sh OUT_DIR [NIGHTS=30]
#
# Records NIGHTS-1 past runs (`gendata runs`), then runs tonight's real `audit` over the bundled
# sample-data/ (it writes OUT_DIR/out/report.html), and renders the page with Chromium:
# OUT_DIR/dom.html (--dump-dom), OUT_DIR/page.png (the whole page, 1000 px wide, as on a desk)
# and OUT_DIR/chart.png (the chart alone at the top of a copy of the page: the test's "chart
# area"). Also OUT_DIR/phone.png, 390 px wide. Needs Debian's `chromium` (scripts/test.sh
# installs it). Times the rendering of a 365-run page into OUT_DIR/timing.txt. DIRECTADMIN=DIR
# audits that DirectAdmin tree instead of the sample's (tests/page.rs gives a copy with a domain
# whose account file is missing, to see it not audited).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "$1")
nights=${2:-30}
mkdir -p "$out"
# The test gives its own binary (a cargo inside `cargo test` would wait on cargo's lock).
if [ -z "${BREACH_AUDIT:-}" ]; then
  cargo build --release --quiet
  cargo build --release --quiet --example gendata
fi
ba=${BREACH_AUDIT:-$PWD/target/release/breach-audit}
gen=${GENDATA:-$PWD/target/release/examples/gendata}
rm -rf "$out/out" "$out/index"
# HISTORY=ready: the caller (tests/page.rs) recorded the past runs in OUT_DIR/state itself.
if [ "${HISTORY:-}" != ready ]; then
  rm -rf "$out/state"
  if [ "$nights" -gt 1 ]; then
    "$gen" runs "$out/state" $((nights - 1))
  fi
fi
# Tonight: the real nightly job on the sample data (exit 1: new findings).
rc=0
"$ba" audit --config sample-data/audit.toml --index "$out/index" --state "$out/state" \
  --out "$out/out" ${DIRECTADMIN:+--directadmin "$DIRECTADMIN"} -q || rc=$?
[ "$rc" -le 1 ] || { echo "audit failed ($rc)" >&2; exit 1; }
test -s "$out/out/report.html"

chrome() {
  command -v chromium >/dev/null || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 1; }
  # --no-sandbox: tests run as root in containers; the page is our own file, with no script.
  timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --no-first-run --disable-extensions --user-data-dir="$out/chrome-profile" "$@" 2>/dev/null
}
page="file://$out/out/report.html"
chrome --dump-dom "$page" > "$out/dom.html"
chrome --window-size=1000,2600 --screenshot="$out/page.png" "$page" >/dev/null
chrome --window-size=390,2400 --screenshot="$out/phone.png" "$page" >/dev/null
# The chart alone, at the top left: everything else hidden, margins gone.
sed 's#</style>#body > *:not(\#history), \#history > h2, .legend { display: none !important; } body { padding: 0 !important; margin: 0 !important; } \#chart { width: 800px; }</style>#' \
  "$out/out/report.html" > "$out/chart.html"
chrome --window-size=800,260 --screenshot="$out/chart.png" "file://$out/chart.html" >/dev/null
for f in dom.html page.png phone.png chart.png; do test -s "$out/$f" || { echo "chromium wrote no $f" >&2; exit 1; }; done

# Rendering time of a year of runs (the page alone, from its state).
if [ "${HISTORY:-}" != ready ]; then
  rm -rf "$out/year"
  "$gen" runs "$out/year" 365
  t0=$(date +%s%N)
  "$ba" report --state "$out/year" --out "$out/year.html" --nights 365
  t1=$(date +%s%N)
  echo "report of 365 runs: $(( (t1 - t0) / 1000000 )) ms, $(stat -c %s "$out/year.html") bytes" > "$out/timing.txt"
  cat "$out/timing.txt" >&2
fi
