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

# run LABEL CMD...: time a command; sets SECS (wall), CPU (user + system seconds) and RSS_MB.
run() {
  local label=$1; shift
  local t0 t1 user sys
  t0=$(date +%s%N)
  /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" || { local rc=$?; [ $rc -eq 1 ] || { echo "$label failed ($rc)" >&2; exit 1; }; }
  t1=$(date +%s%N)
  read -r _ RSS_KB user sys < <(tail -n 1 "$work/time")
  SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  RSS_MB=$(awk -v k="$RSS_KB" 'BEGIN { printf "%.0f", k / 1024 }')
  echo "  $label: ${SECS}s, CPU ${CPU}s, peak RSS ${RSS_MB} MB" >&2
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# goal TEXT MET: print a goal line (standard output) and keep it for BENCHMARKS.md.
GOALS=""
goal() {
  local verdict; verdict=$(awk -v c="$2" 'BEGIN { print (c ? "met" : "NOT MET") }')
  echo "goal: $1: $verdict"
  GOALS+="| $1 | $(awk -v c="$2" 'BEGIN { print (c ? "**met**" : "not met") }') |"$'\n'
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
rm -rf "$work/cidx"

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
  join_secs=$SECS
  if [ "$n" = 5000000 ] || [ "$n" = 20000000 ]; then
    # Build CPU against zstd -1 -T1's over the same text (issue 39): alternated, medians of 3.
    : > "$work/cpu.build"; : > "$work/cpu.zstd"; : > "$work/rss.build"
    for _ in 1 2 3; do
      rm -rf "$work/idx-cpu"
      run "build $n (CPU)" "$ba" build -q --index "$work/idx-cpu" --hibp "$work/size.txt"
      echo "$CPU" >> "$work/cpu.build"; echo "$RSS_MB" >> "$work/rss.build"
      run "zstd -1 -T1 $n (CPU)" zstd -q -1 -T1 -f "$work/size.txt" -o "$work/size.zst"
      echo "$CPU" >> "$work/cpu.zstd"
      rm -f "$work/size.zst"
    done
    rm -rf "$work/idx-cpu"
    eval "cpu_build_$n=$(median < "$work/cpu.build"); cpu_zstd_$n=$(median < "$work/cpu.zstd"); rss_build_$n=$(sort -n "$work/rss.build" | tail -1)"
  fi
  if [ "$n" = 5000000 ]; then
    t_bph5=$(awk -v b="$b" -v n="$n" 'BEGIN { printf "%.2f", b / n }'); t_check5=$size_check; t_join5=$join_secs
    # Many hits: half the accounts have a hash from this dump (record assembly and output).
    $gen accounts "$A" "$n" --hit-rate 0.5 --seed 7 > "$work/acc50.csv"
    run "check $A accounts, 50% at risk" "$ba" check -q --index "$work/idx-size" --accounts-csv "$work/acc50.csv" --output "$work/size50.out"
    t_check50=$SECS; hits50=$(wc -l < "$work/size50.out")
    t_check50_cpu=$CPU
    run "sort+join, 50% hits" bash -c "tail -n +2 '$work/acc50.csv' | cut -d, -f2 | sort -S 1G > '$work/acc.sorted' && join -t: '$work/acc.sorted' '$work/size.txt' > '$work/join.out'"
    t_join50=$SECS; t_join50_cpu=$CPU; join50=$(wc -l < "$work/join.out")
    # The same accounts against an index of this dump and the combolist (an email-map lookup
    # per account and a second password map).
    rm -rf "$work/idx-combo"
    "$ba" build -q --index "$work/idx-combo" --hibp "$work/size.txt" --combolist "$work/combo.txt" --tmp-dir "$work"
    run "check $A accounts, 50% at risk, dump + combolist index" "$ba" check -q --index "$work/idx-combo" --accounts-csv "$work/acc50.csv" --output "$work/size50c.out"
    t_check50c=$SECS; t_check50c_cpu=$CPU; hits50c=$(wc -l < "$work/size50c.out")
    rm -rf "$work/idx-combo"
    rm -f "$work/acc50.csv" "$work/size50.out" "$work/size50c.out"
  fi
  if [ "$n" = 100000000 ]; then t_check100=$size_check; fi
  size_rows+="| $n | $(awk -v b="$b" -v n="$n" 'BEGIN { printf "%.2f", b / n }') | ${build_rate}M | ${size_rss} MB | ${size_check}s | ${join_secs}s ($(awk -v a="$size_check" -v b="$join_secs" 'BEGIN { printf "%.2f", a / b }')x) |"$'\n'
  rm -rf "$work/idx-size" "$work/size.txt" "$work/size.out"
done
rm -f "$work/combo.txt"

echo "start-up" >&2
BIN="$ba" bash scripts/bench-start.sh "$work/start.md" 2> "$work/start.goals"
cat "$work/start.goals" >&2

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
# Issue 39: the engine against the C++ peer (oschonrock/hibp at commit 773ecde; its figures are
# quoted from the issue, measured on this kind of machine: it is not built here).
r5=$(ratio "${cpu_build_5000000:-0}" "${cpu_zstd_5000000:-1}")
r20=$(ratio "${cpu_build_20000000:-0}" "${cpu_zstd_20000000:-1}")
bph5_ok=$(awk -v x="${t_bph5:-99}" 'BEGIN { print (x <= 10.91) }')
goal "build CPU at most 0.4x zstd -1 -T1's over the same text, 5M dump (${cpu_build_5000000}s vs ${cpu_zstd_5000000}s = ${r5}x)" "$(awk -v x="$r5" 'BEGIN { print (x <= 0.4) }')"
goal "build CPU at most 0.4x zstd -1 -T1's, 20M dump (${cpu_build_20000000}s vs ${cpu_zstd_20000000}s = ${r20}x)" "$(awk -v x="$r20" 'BEGIN { print (x <= 0.4) }')"
goal "build peak RSS at most 64 MiB, 5M dump (${rss_build_5000000} MB)" "$(awk -v x="$rss_build_5000000" 'BEGIN { print (x <= 64) }')"
goal "build peak RSS at most 64 MiB, 20M dump (${rss_build_20000000} MB)" "$(awk -v x="$rss_build_20000000" 'BEGIN { print (x <= 64) }')"
goal "unsorted build within --mem 256M (${buildu_rss} MB)" "$(awk -v x="$buildu_rss" 'BEGIN { print (x <= 256 + 70) }')"
goal "bytes/hash no worse than 10.91 at 5M (${t_bph5:-n/a})" "$bph5_ok"
goal "check, 50% hits, HIBP index, at most 0.5x sort+join (${t_check50}s vs ${t_join50}s = $(ratio "$t_check50" "$t_join50")x; CPU ${t_check50_cpu}s vs ${t_join50_cpu}s)" "$(awk -v a="$t_check50" -v b="$t_join50" 'BEGIN { print (a <= 0.5 * b) }')"
goal "check, 50% hits, dump + combolist index, at most 0.3x join (${t_check50c}s vs ${t_join50}s = $(ratio "$t_check50c" "$t_join50")x; CPU ${t_check50c_cpu}s)" "$(awk -v a="$t_check50c" -v b="$t_join50" 'BEGIN { print (a <= 0.3 * b) }')"
goal "combolist index at most 0.6x its input, every address and count kept ($(ratio "$combo_idx" "$combo_bytes")x)" "$(awk -v a="$combo_idx" -v b="$combo_bytes" 'BEGIN { print (a <= 0.6 * b) }')"
while read -r line; do
  case $line in
    goal:*)
      txt=${line#goal: }; rest=${txt#*: }; detail=${rest#not met }; detail=${detail#met }
      goal "${txt%%: *} $detail" "$(case $rest in met*) echo 1;; *) echo 0;; esac)";;
  esac
done < "$work/start.goals"
scale39=$(grep -E '^\| session 3' BENCHMARKS.scale.md 2>/dev/null | tail -n 1 || true)
peer="| path | oschonrock/hibp 773ecde (issue 39) | breach-audit before (issue 39) | breach-audit, this run |
|---|---|---|---|
| convert/build, sorted 5M-line dump: CPU, peak RSS | 0.311 s, ≤ 11 MiB | 0.897 s, 149 MiB | ${cpu_build_5000000}s, ${rss_build_5000000} MB |
| the same against \`zstd -1 -T1\`'s CPU on that text | 0.38x | 1.00-1.27x | ${r5}x (zstd ${cpu_zstd_5000000}s) |
| convert/build, sorted 20M-line dump: CPU, peak RSS | 1.306 s, ≤ 11 MiB | 3.796 s, 254 MiB | ${cpu_build_20000000}s, ${rss_build_20000000} MB (${r20}x zstd's ${cpu_zstd_20000000}s) |
| one lookup per process | 2 ms | 5 ms | see Start-up below (beside \`/bin/true\`) |
| \`--version\` alone | | 4 ms (\`/bin/true\` 1 ms) | see Start-up below |
| check, 1M accounts, 50% hits, HIBP index | | 0.73x \`sort\`+\`join\` | $(ratio "$t_check50" "$t_join50")x |
| the same, dump + combolist index | | 0.74x | $(ratio "$t_check50c" "$t_join50")x |
| combolist index / its input | | 1.04x | $(ratio "$combo_idx" "$combo_bytes")x |"
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

## Goals of issue 39 (this run)

| goal | |
|---|---|
$GOALS
The 1e9 scale run (\`scripts/scale-run.sh\`, too long for every bench run; see "Scale run" below):

| build | lines | dump | build wall time | peak RSS | index |
|---|---|---|---|---|---|
${scale39:-| not run | | | | | |}

### Against the C++ peer

$peer

$(cat "$work/start.md")

## Targets of earlier issues

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

$(cat BENCHMARKS.check50.md 2>/dev/null)

$(cat BENCHMARKS.profile.md 2>/dev/null)

Reproduce: \`scripts/bench.sh $N $A $C\` (work files in \`bench-work/\`, removed afterwards; \`KEEP=1\` keeps them).
MD
echo "wrote BENCHMARKS.md" >&2
BENCH_DIR="$work" bash scripts/bench-notify.sh
BENCH_DIR="$work" bash scripts/bench-sql.sh
# fetch against a local nginx (issue 37): needs Debian's nginx-light, openssl and curl (scripts/
# test.sh installs them); writes BENCHMARKS.fetch.md and the "Fetch" section. Its million-file
# mirror is made once under target/bench-fetch-mirror/ and kept for the next run.
# BENCH_FETCH=0 skips it (it takes about as long as everything above; its million-file mirrors are
# made once per machine): BENCHMARKS.md then carries the Fetch section of BENCHMARKS.fetch.md's
# own, dated run, saying so.
if [ "${BENCH_FETCH:-1}" = 1 ] && [ -x /usr/sbin/nginx ] && command -v curl >/dev/null; then
  BIN="$ba" bash scripts/bench-fetch.sh
elif [ -e BENCHMARKS.fetch.md ]; then
  {
    echo
    echo "## Fetch"
    echo
    echo "Not measured in this run (\`BENCH_FETCH=0\`): the tables below are BENCHMARKS.fetch.md, from"
    echo "\`scripts/bench-fetch.sh\`'s own run (dated in its first lines), side by side with curl."
    echo
    awk '/^## / { h = $0; sub(/^## /, "### ", h) } /^\| goal \(issue 37\)/ { print h; print ""; p = 1 } p { print } /^$/ { p = 0 }' BENCHMARKS.fetch.md
    echo "Details: BENCHMARKS.fetch.md."
  } >> BENCHMARKS.md
fi
[ "${KEEP:-0}" = 1 ] || rm -rf "$work"
