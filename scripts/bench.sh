#!/usr/bin/env bash
# Benchmark breach-audit against baselines on generated data, in one run, and write BENCHMARKS.md.
#
#   scripts/bench.sh [DUMP_LINES=10000000] [ACCOUNTS=1000000] [COMBO_ROWS=10000000]
#
# Measures: build throughput (sorted and unsorted input) next to `zstd -1 -T1` over the same text,
# index bytes per hash, peak RSS, `check` of ACCOUNTS accounts next to `sort`+`join` over the same
# files, and single lookups next to `look` (binary search in the sorted text dump).
# Work files go to $BENCH_DIR (default bench-work/, removed at the end unless KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
A=${2:-1000000}
C=${3:-10000000}
work=${BENCH_DIR:-bench-work}
mkdir -p "$work"
cargo build --release --quiet
cargo build --release --quiet --example gendata
gen=target/release/examples/gendata
ba=target/release/breach-audit
export LC_ALL=C

# run LABEL CMD...: time a command; sets SECS and RSS_MB.
run() {
  local label=$1; shift
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" || { local rc=$?; [ $rc -eq 1 ] || { echo "$label failed ($rc)" >&2; exit 1; }; }
  t1=$(date +%s%N)
  read -r _ RSS_KB < <(tail -n 1 "$work/time")
  SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  RSS_MB=$(awk -v k="$RSS_KB" 'BEGIN { printf "%.0f", k / 1024 }')
  echo "  $label: ${SECS}s, peak RSS ${RSS_MB} MB" >&2
}
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s == 0) s = 0.01; printf "%.2f", n / s / 1e6 }'; }

echo "generating $N dump lines and $A accounts in $work" >&2
$gen hibp "$N" > "$work/dump.txt"
$gen hibp "$N" --unsorted > "$work/dump-unsorted.txt"
$gen accounts "$A" "$N" --hit-rate 0.1 > "$work/accounts.csv"
dump_mb=$(du -m "$work/dump.txt" | cut -f1)

echo "build" >&2
run "zstd -1 -T1" zstd -q -1 -T1 -f "$work/dump.txt" -o "$work/dump.zst"
zstd_s=$SECS
rm -f "$work/dump.zst"
rm -rf "$work/idx" "$work/idx-u"
run "build (sorted)" "$ba" build -q --index "$work/idx" --hibp "$work/dump.txt"
build_s=$SECS; build_rss=$RSS_MB
run "build (unsorted, --mem 256M)" "$ba" build -q --index "$work/idx-u" --hibp "$work/dump-unsorted.txt" --mem 256M --tmp-dir "$work"
buildu_s=$SECS; buildu_rss=$RSS_MB
bytes=$(stat -c %s "$work/idx/sha1.map")
bph=$(awk -v b="$bytes" -v n="$N" 'BEGIN { printf "%.2f", b / n }')
keys_of() { grep -o '"keys": [0-9]*' "$1/manifest.json" | head -1 | grep -o '[0-9]*$'; }
[ "$(keys_of "$work/idx")" = "$(keys_of "$work/idx-u")" ] && same=yes || same=NO
bph_u=$(awk -v b="$(stat -c %s "$work/idx-u/sha1.map")" -v n="$N" 'BEGIN { printf "%.2f", b / n }')

echo "check" >&2
run "check" "$ba" check -q --index "$work/idx" --accounts-csv "$work/accounts.csv" --output "$work/at-risk.jsonl"
check_s=$SECS; check_rss=$RSS_MB
ours_hits=$(wc -l < "$work/at-risk.jsonl")
# Baseline: the hashes of the accounts, sorted, joined with the (already sorted) dump.
run "sort+join" bash -c "tail -n +2 '$work/accounts.csv' | cut -d, -f2 | sort -S 1G > '$work/acc.sorted' && join -t: '$work/acc.sorted' '$work/dump.txt' > '$work/join.out'"
join_s=$SECS; join_rss=$RSS_MB
join_hits=$(wc -l < "$work/join.out")

echo "lookups" >&2
tail -n +2 "$work/accounts.csv" | cut -d, -f2 | head -n 1000000 > "$work/probe.txt"
probes=$(wc -l < "$work/probe.txt")
run "lookup --hashes ($probes)" bash -c "'$ba' lookup --index '$work/idx' --hashes < '$work/probe.txt' > /dev/null"
lookup_s=$SECS
lookup_us=$(awk -v s="$lookup_s" -v n="$probes" 'BEGIN { printf "%.2f", s / n * 1e6 }')
head -n 1000 "$work/probe.txt" > "$work/probe1k.txt"
run "look (1000 calls)" bash -c "while read -r h; do look \"\$h\" '$work/dump.txt' > /dev/null || true; done < '$work/probe1k.txt'"
look_us=$(awk -v s="$SECS" 'BEGIN { printf "%.0f", s / 1000 * 1e6 }')
# Index open + one lookup from a cold process (what a shell one-off costs).
run "one lookup, new process" bash -c "echo password | '$ba' lookup --index '$work/idx' > /dev/null"
one_ms=$(awk -v s="$SECS" 'BEGIN { printf "%.1f", s * 1000 }')

echo "combolists" >&2
$gen combolist "$C" > "$work/combo.txt"
combo_mb=$(du -m "$work/combo.txt" | cut -f1)
combo_bytes=$(stat -c %s "$work/combo.txt")
# Baselines over the same text: light compression, and what an operator does today.
run "zstd -1 -T1 (combolist)" zstd -q -1 -T1 -f "$work/combo.txt" -o "$work/combo.zst"
czstd_s=$SECS
rm -f "$work/combo.zst"
run "sort -u -S 300M --parallel=2 (combolist)" sort -u -S 300M --parallel=2 -T "$work" "$work/combo.txt" -o "$work/combo.sorted"
csort_s=$SECS; csort_rss=$RSS_MB
rm -f "$work/combo.sorted"
rm -rf "$work/cidx"
# Not -q: the build prints where its time went.
run "build --combolist" sh -c "exec '$ba' build --index '$work/cidx' --combolist '$work/combo.txt' --tmp-dir '$work' 2> '$work/cbuild.log'"
combo_s=$SECS; combo_rss=$RSS_MB
combo_phases=$(grep -o 'reading.*' "$work/cbuild.log" | tail -1)
combo_idx=$(du -sb "$work/cidx" | cut -f1)
# The provider's own 1,000 domains (of the generator's 100,000, mid-sized ones).
for d in $(seq 5000 5999); do echo "d$d.example"; done > "$work/own.txt"
rm -rf "$work/cidx-own"
run "build --combolist --keep-passwords-for (1000 domains)" sh -c "exec '$ba' build --index '$work/cidx-own' --combolist '$work/combo.txt' --tmp-dir '$work' --keep-passwords-for '$work/own.txt' 2> '$work/cbuild-own.log'"
own_s=$SECS; own_rss=$RSS_MB
own_phases=$(grep -o 'reading.*' "$work/cbuild-own.log" | tail -1)
own_idx=$(du -sb "$work/cidx-own" | cut -f1)
own_leaks=$(grep -o '"leaks_bytes": [0-9]*' "$work/cidx-own/manifest.json" | grep -o '[0-9]*$')
own_records=$(grep -o '"records": [0-9]*' "$work/cidx-own/manifest.json" | grep -o '[0-9]*$')
rm -rf "$work/cidx-own"
# What the NTLM map of combolist passwords would add.
rm -rf "$work/cidx-nt"
"$ba" build -q --index "$work/cidx-nt" --combolist "$work/combo.txt" --tmp-dir "$work" --combolist-ntlm
ntlm_map=$(stat -c %s "$work/cidx-nt/ntlm-combolist.map")
rm -rf "$work/cidx-nt"
man="$work/cidx/manifest.json"
addresses=$(grep -o '"addresses": [0-9]*' "$man" | grep -o '[0-9]*$')
fst_bytes=$(grep -o '"fst_bytes": [0-9]*' "$man" | grep -o '[0-9]*$')
leaks_bytes=$(grep -o '"leaks_bytes": [0-9]*' "$man" | grep -o '[0-9]*$')
sha1c_bytes=$(stat -c %s "$work/cidx/sha1-combolist.map")
bpa=$(awk -v b="$fst_bytes" -v n="$addresses" 'BEGIN { printf "%.2f", b / n }')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# One domain from a cold start: drop the page cache when we may (root), else say it was warm.
cold() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && echo cold || echo warm; }
state=$(cold)
# (To stdout through sh: --output would add an fsync of the report to the query time.)
run "domain target.example ($state)" sh -c "exec '$ba' domain --index '$work/cidx' target.example > '$work/domain.out'"
dom_ms=$(awk -v s="$SECS" 'BEGIN { printf "%.1f", s * 1000 }')
dom_n=$(wc -l < "$work/domain.out")
cold > /dev/null
# grep -c reads the whole file (grep > /dev/null would stop at the first match).
run "grep -cF @target.example ($state)" grep -cF '@target.example' "$work/combo.txt"
grep_cold_ms=$(awk -v s="$SECS" 'BEGIN { printf "%.0f", s * 1000 }')
grep_n=$(grep -cF '@target.example' "$work/combo.txt")
run "grep -cF @target.example (warm)" grep -cF '@target.example' "$work/combo.txt"
grep_warm_ms=$(awk -v s="$SECS" 'BEGIN { printf "%.0f", s * 1000 }')
# Warm: the mean of 20 new processes, so the harness's own start-up is spread out.
run "domain target.example (warm, 20 processes)" sh -c "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do '$ba' domain --index '$work/cidx' target.example > '$work/domain.out'; done"
dom_warm_ms=$(awk -v s="$SECS" 'BEGIN { printf "%.1f", s * 1000 / 20 }')
rm -rf "$work/cidx" "$work/combo.txt"

echo "verification" >&2
cargo build --release --quiet --example verifybench
verify_table=$(target/release/examples/verifybench 0.5)
V=${V_ACCOUNTS:-100000}
rm -rf "$work/da"
$gen directadmin "$V" "$work/da" --leaked 0.1 > "$work/da.combo"
rm -rf "$work/daidx"
"$ba" build -q --index "$work/daidx" --combolist "$work/da.combo" --hibp "$work/dump.txt"
rm -f "$work/da.cache"
run "check $V DirectAdmin accounts (cold)" "$ba" check -q --index "$work/daidx" --directadmin "$work/da" --cache "$work/da.cache" --output "$work/da.out"
da_cold=$SECS; da_rss=$RSS_MB
da_crit=$(grep -c '"critical"' "$work/da.out" || true)
da_leaked=$(wc -l < "$work/da.combo")
run "check $V DirectAdmin accounts (cached)" "$ba" check -q --index "$work/daidx" --directadmin "$work/da" --cache "$work/da.cache" --output "$work/da.out"
da_warm=$SECS
rm -rf "$work/da" "$work/daidx" "$work/da.combo" "$work/da.cache"

echo "index size by N" >&2
size_rows=""
for n in ${SIZES:-1000000 5000000 20000000 100000000}; do
  $gen hibp "$n" --seed 7 > "$work/size.txt"
  rm -rf "$work/idx-size"
  run "build $n" "$ba" build -q --index "$work/idx-size" --hibp "$work/size.txt"
  b=$(stat -c %s "$work/idx-size/sha1.map")
  build_rate=$(rate "$n" "$SECS"); size_rss=$RSS_MB
  # The same 1M accounts against every dump size: check time should not grow with the dump.
  run "check $A accounts against $n" "$ba" check -q --index "$work/idx-size" --accounts-csv "$work/accounts.csv" --output "$work/size.out"
  size_check=$SECS
  run "sort+join against $n" bash -c "tail -n +2 '$work/accounts.csv' | cut -d, -f2 | sort -S 1G > '$work/acc.sorted' && join -t: '$work/acc.sorted' '$work/size.txt' > '$work/join.out'"
  if [ "$n" = 5000000 ]; then
    t_bph5=$(awk -v b="$b" -v n="$n" 'BEGIN { printf "%.2f", b / n }'); t_check5=$size_check; t_join5=$SECS
    # Many hits: half the accounts have a hash from this dump (record assembly and output).
    $gen accounts "$A" "$n" --hit-rate 0.5 --seed 7 > "$work/acc50.csv"
    run "check $A accounts, 50% at risk" "$ba" check -q --index "$work/idx-size" --accounts-csv "$work/acc50.csv" --output "$work/size50.out"
    t_check50=$SECS; hits50=$(wc -l < "$work/size50.out")
    run "sort+join, 50% hits" bash -c "tail -n +2 '$work/acc50.csv' | cut -d, -f2 | sort -S 1G > '$work/acc.sorted' && join -t: '$work/acc.sorted' '$work/size.txt' > '$work/join.out'"
    t_join50=$SECS; join50=$(wc -l < "$work/join.out")
    rm -f "$work/acc50.csv" "$work/size50.out"
  fi
  if [ "$n" = 100000000 ]; then t_check100=$size_check; fi
  size_rows+="| $n | $(awk -v b="$b" -v n="$n" 'BEGIN { printf "%.2f", b / n }') | ${build_rate}M | ${size_rss} MB | ${size_check}s | ${SECS}s ($(awk -v a="$size_check" -v b="$SECS" 'BEGIN { printf "%.2f", a / b }')x) |"$'\n'
  rm -rf "$work/idx-size" "$work/size.txt" "$work/size.out"
done

cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
yn() { awk -v c="$1" 'BEGIN { print (c ? "**met**" : "not met") }'; }
build_ratio=$(awk -v z="$zstd_s" -v b="$build_s" 'BEGIN { printf "%.2f", z / b }')
check_ratio=$(awk -v c="${t_check5:-0}" -v j="${t_join5:-1}" 'BEGIN { printf "%.2f", c / j }')
scale_row=$(grep -E '^\| session 2' BENCHMARKS.scale.md 2>/dev/null | tail -n 1 | awk -F'|' '{ print $7 }' | sed 's/^ *//; s/ *$//')
targets="| target (issue #6) | measured in this run | |
|---|---|---|
| index at most 12 bytes/hash on a 5M-line dump | ${t_bph5:-n/a} bytes/hash | $(yn "$(awk -v x="${t_bph5:-99}" 'BEGIN { print (x <= 12) }')") |
| index at most 10 bytes/hash at 1e9, counts exact, false-positive bound documented | scale run: ${scale_row:-see below}; false positives at most N / 2^60 per lookup | see the scale run |
| build at least 0.6x (aim 1x) the lines/s of \`zstd -1 -T1\` on the same text | ${build_ratio}x ($(rate "$N" "$build_s")M vs $(rate "$N" "$zstd_s")M lines/s) | $(yn "$(awk -v x="$build_ratio" 'BEGIN { print (x >= 0.6) }')") |
| build peak memory under 1 GiB for any input size | ${build_rss} MB here; 1e9 lines: see the scale run | $(yn "$(awk -v x="$build_rss" 'BEGIN { print (x < 1024) }')") |
| \`check\` of $A accounts at most half the time of \`sort\`+\`join\` over a 5M-line dump | ${t_check5:-n/a}s vs ${t_join5:-n/a}s = ${check_ratio}x | $(yn "$(awk -v x="$check_ratio" 'BEGIN { print (x <= 0.5) }')") |
| \`check\` time independent of the dump size | ${t_check5:-n/a}s at 5M, ${t_check100:-n/a}s at 100M | $(yn "$(awk -v a="${t_check5:-0}" -v b="${t_check100:-99}" 'BEGIN { print (b <= 1.5 * a) }')") |
| single lookups under 2 µs warm | ${lookup_us} µs each, streamed through one process | $(yn "$(awk -v x="$lookup_us" 'BEGIN { print (x < 2) }')") |

| target (issue #17) | measured in this run | |
|---|---|---|
| \`build --combolist\` at least as fast as \`sort -u -S 300M --parallel=2\` | ${combo_s}s vs ${csort_s}s = $(ratio "$csort_s" "$combo_s")x the speed | $(yn "$(awk -v a="$combo_s" -v b="$csort_s" 'BEGIN { print (a <= b) }')") |
| peak RSS within \`--mem\` (512M) plus a fixed ~70 MB | ${combo_rss} MB | $(yn "$(awk -v x="$combo_rss" 'BEGIN { print (x <= 582) }')") |
| whole index at most 0.6x the combolist, every address and exact counts kept | every password kept: $(ratio "$combo_idx" "$combo_bytes")x; \`--keep-passwords-for\`: $(ratio "$own_idx" "$combo_bytes")x | kept: $(yn "$(awk -v a="$combo_idx" -v b="$combo_bytes" 'BEGIN { print (a <= 0.6 * b) }')"); own domains: $(yn "$(awk -v a="$own_idx" -v b="$combo_bytes" 'BEGIN { print (a <= 0.6 * b) }')") |
| \`--keep-passwords-for\` build at least 0.5x the lines/s of \`zstd -1 -T1\` | $(rate "$C" "$own_s")M vs $(rate "$C" "$czstd_s")M lines/s = $(ratio "$czstd_s" "$own_s")x | $(yn "$(awk -v a="$czstd_s" -v b="$own_s" 'BEGIN { print (a / b >= 0.5) }')") |
| \`check\` with half of $A accounts at risk at most 0.3x \`sort\`+\`join\` (5M dump) | ${t_check50:-n/a}s vs ${t_join50:-n/a}s = $(ratio "${t_check50:-0}" "${t_join50:-1}")x ($hits50 records, $join50 joined lines) | $(yn "$(awk -v a="${t_check50:-9}" -v b="${t_join50:-1}" 'BEGIN { print (a <= 0.3 * b) }')") |"
# The login path (README "Checking at login"): needs Dovecot's Lua passdb (scripts/test.sh
# installs it); BENCHMARKS.login.md is kept from an earlier run otherwise.
if [ -e /usr/lib/dovecot/modules/auth/libauthdb_lua.so ]; then
  BIN="$ba" bash scripts/bench-login.sh >/dev/null
fi
# A fleet in one PostgreSQL (issue 28): needs Debian's postgresql (scripts/test.sh installs it);
# BENCHMARKS.fleet.md is kept from an earlier run otherwise.
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  BIN="$ba" BENCH_DIR="$work" bash scripts/bench-fleet.sh >/dev/null
fi
cat > BENCHMARKS.md <<MD
# Benchmarks

Produced by \`scripts/bench.sh $N $A $C\` on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu),
$(free -g | awk '/Mem:/ {print $2}') GiB RAM. Data from \`scripts/gen-data.sh\`: a HIBP-shaped SHA-1 dump of
$N lines ($dump_mb MB, uppercase hex, heavy-tailed counts), the same hashes in another order for the
unsorted build, and an \`email,hash\` export of $A accounts of which 10% have a hash from the dump.
Every figure below comes from the same run; baselines ran on the same files.

## Targets

$targets

## Build

| what | time | lines/s | peak RSS |
|---|---|---|---|
| \`zstd -1 -T1\` over the dump (baseline) | ${zstd_s}s | $(rate "$N" "$zstd_s")M | |
| \`build\`, sorted dump (streams into the index) | ${build_s}s | $(rate "$N" "$build_s")M | ${build_rss} MB |
| \`build\`, unsorted dump, \`--mem 256M\` (external sort) | ${buildu_s}s | $(rate "$N" "$buildu_s")M | ${buildu_rss} MB |

Index: **$bph bytes per hash** ($bytes bytes for $N hashes, counts exact; false positives at most
N / 2^60 per lookup). The unsorted build holds the same keys: $same ($bph_u bytes per hash: a merged
shard picks its key layout from its record count before duplicates across runs merge).

Index size, build speed, and the time to \`check\` the same $A accounts, for other dump sizes
(sorted input, same generator, \`SIZES\` to change):

| hashes | bytes/hash | build lines/s | build peak RSS | check $A accounts | sort+join, same accounts (check/join) |
|---|---|---|---|---|---|
$size_rows
## Check

| what | time | peak RSS | accounts at risk |
|---|---|---|---|
| \`check\` of $A accounts (CSV in, JSONL out) | ${check_s}s | ${check_rss} MB | $ours_hits |
| \`sort\` + \`join\` of the same hashes with the sorted dump (baseline) | ${join_s}s | ${join_rss} MB | $join_hits |

\`check\`'s peak RSS includes the pages of the memory-mapped index its lookups touched (file-backed
page cache the kernel can drop, not heap): it grows with the index, up to its size.

## Combolists

A generated combolist of $C rows ($combo_mb MB; random addresses over 100,000 domains of
Zipf-like sizes, \`:\`/\`;\`/tab/space separators, some uppercase, 1% junk lines):

| what | time | rows/s | peak RSS | index |
|---|---|---|---|---|
| \`zstd -1 -T1\` over the combolist (baseline) | ${czstd_s}s | $(rate "$C" "$czstd_s")M | | |
| \`LC_ALL=C sort -u -S 300M --parallel=2\` (baseline) | ${csort_s}s | $(rate "$C" "$csort_s")M | ${csort_rss} MB | |
| \`build --combolist\` (every password kept) | ${combo_s}s | $(rate "$C" "$combo_s")M | ${combo_rss} MB | $combo_idx bytes, **$(ratio "$combo_idx" "$combo_bytes")x** the combolist |
| \`build --combolist --keep-passwords-for\` 1,000 domains | ${own_s}s | $(rate "$C" "$own_s")M | ${own_rss} MB | $own_idx bytes, **$(ratio "$own_idx" "$combo_bytes")x** the combolist |

Where the time went (the build's own report): every password kept: $combo_phases; own domains
only: $own_phases. Both at the default \`--mem 512M\`.

| index part (every password kept) | bytes | share of the combolist |
|---|---|---|
| email map (\`emails.fst\`): $addresses addresses, **$bpa bytes per address** | $fst_bytes | $(ratio "$fst_bytes" "$combo_bytes")x |
| leaked passwords (\`leaks.bin\`, front-coded zstd blocks) | $leaks_bytes | $(ratio "$leaks_bytes" "$combo_bytes")x |
| SHA-1 map of combolist passwords | $sha1c_bytes | $(ratio "$sha1c_bytes" "$combo_bytes")x |
| NTLM map of combolist passwords (only with an NTLM dump or \`--combolist-ntlm\`: not in the figures above) | $ntlm_map | $(ratio "$ntlm_map" "$combo_bytes")x |
| with \`--keep-passwords-for\`: leaks.bin for $own_records addresses | $own_leaks | $(ratio "$own_leaks" "$combo_bytes")x |

| query | time |
|---|---|
| \`domain target.example\`, new process, $state page cache ($dom_n addresses) | ${dom_ms} ms (warm: ${dom_warm_ms} ms) |
| \`grep -cF '@target.example'\` over the combolist, $state page cache ($grep_n rows; baseline) | ${grep_cold_ms} ms (warm: ${grep_warm_ms} ms) |

$(cat BENCHMARKS.combolist.md 2>/dev/null)

## Confirmed leaks

Verification throughput per scheme on one core (\`examples/verifybench.rs\`, hashes made by the
real tools in \`sample-data/kat/hashes.tsv\`, with their default costs):

$verify_table

A full \`check\` of a generated DirectAdmin tree of $V accounts (\`gendata directadmin\`; $((V / 50))
domains, SHA512-CRYPT at 5000 rounds as DirectAdmin writes them), $da_leaked of whose addresses are
in a combolist (half with the current password): every leaked password is verified against the
stored hash, in parallel on both cores.

| what | time | peak RSS | critical |
|---|---|---|---|
| \`check --directadmin\`, empty verification cache | ${da_cold}s | ${da_rss} MB | $da_crit |
| the same, second run (outcomes from \`--cache\`) | ${da_warm}s | | |

## Lookups

| what | per lookup |
|---|---|
| \`lookup --hashes\`, $probes hashes through one process (parse + lookup + print) | ${lookup_us} µs |
| \`look\` (binary search of the sorted text dump), one process per hash (baseline) | ${look_us} µs |
| \`lookup\` of one password from a new process (open index + lookup) | ${one_ms} ms |

$(cat BENCHMARKS.login.md 2>/dev/null)

$(cat BENCHMARKS.fleet.md 2>/dev/null)

$(cat BENCHMARKS.scale.md 2>/dev/null)

$(cat BENCHMARKS.profile.md 2>/dev/null)

Reproduce: \`scripts/bench.sh $N $A $C\` (work files in \`bench-work/\`, removed afterwards; \`KEEP=1\` keeps them).
MD
echo "wrote BENCHMARKS.md" >&2
BENCH_DIR="$work" bash scripts/bench-notify.sh
BENCH_DIR="$work" bash scripts/bench-sql.sh
# fetch against a local nginx (issue 37): needs Debian's nginx-light, openssl and curl (scripts/
# test.sh installs them); writes BENCHMARKS.fetch.md and the "Fetch" section. Its million-file
# mirror is made once under target/bench-fetch-mirror/ and kept for the next run.
if [ -x /usr/sbin/nginx ] && command -v curl >/dev/null; then
  BIN="$ba" bash scripts/bench-fetch.sh
fi
[ "${KEEP:-0}" = 1 ] || rm -rf "$work"
