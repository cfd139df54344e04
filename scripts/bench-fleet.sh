#!/usr/bin/env bash
# A fleet in one ledger (issue 28, "Scale"): SERVERS generated DirectAdmin servers of ACCOUNTS
# mailboxes each audit into one shared PostgreSQL, two at a time, each next to the same server's
# audit into its own SQLite state (the default) in the same run; then one `notify` hands the
# fleet's notices to an outbox; then a few nights of churn on some servers measure the state's
# growth. Writes BENCHMARKS.fleet.md (scripts/bench.sh includes it in BENCHMARKS.md).
#
#   scripts/bench-fleet.sh          # SERVERS=50 ACCOUNTS=20000 NIGHTS=10 CHURN_SERVERS=5
#
# Environment: SERVERS, ACCOUNTS (per server), LEAKED (share of mailboxes whose current password
# is in the combolist, default 0.05), NIGHTS and CHURN_SERVERS (the growth nights and how many
# servers churn in them), CHURN (share of a server's mailboxes changed per night, default 0.005),
# BUDGET (seconds the whole run may take, default 1140: a notify still running at its share is
# stopped and what it delivered is counted, and no night starts once it is spent), KEEP=1 (keep
# the work files), BIN (the breach-audit binary). Work files go to $BENCH_DIR/fleet (default
# bench-work/fleet); PostgreSQL runs from a temporary directory (data and unix socket, `-h ''`,
# the server's default settings: fsync on) as the current user, or as `postgres` under root
# (PostgreSQL refuses root), and is stopped on exit. Needs Debian's postgresql (scripts/test.sh
# installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
SERVERS=${SERVERS:-50}
ACCOUNTS=${ACCOUNTS:-20000}
LEAKED=${LEAKED:-0.05}
NIGHTS=${NIGHTS:-10}
CHURN_SERVERS=${CHURN_SERVERS:-5}
CHURN=${CHURN:-0.005}
BUDGET=${BUDGET:-1140}
started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$CHURN_SERVERS" -le "$SERVERS" ] || CHURN_SERVERS=$SERVERS
work=$(realpath -m "${BENCH_DIR:-bench-work}/fleet")
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; BIN=target/release/breach-audit; fi
ba=$(realpath "$BIN")
# The tree the binary was built from (the tree may move on during the run).
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] || commit="$commit with uncommitted changes in src/"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbin/initdb" ] || { echo "bench-fleet: PostgreSQL not found under /usr/lib/postgresql (scripts/test.sh installs it)" >&2; exit 2; }
export LC_ALL=C
rm -rf "$work"; mkdir -p "$work/t"
fleet="$work/servers"

# PostgreSQL: a throwaway cluster, data and socket in a temporary directory.
pg=$(mktemp -d /tmp/ba-fleet-pg.XXXXXX)
chmod 755 "$pg"
mkdir -p "$pg/data" "$pg/sock"; : > "$pg/log"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$pg/data" "$pg/sock" "$pg/log"; as_pg=(runuser -u postgres --); fi
cleanup() {
  (cd / && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null 2>&1) || true
  rm -rf "$pg"
  [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
(cd / && "${as_pg[@]}" "$pgbin/initdb" -D "$pg/data" -U owner --auth=trust --no-sync >/dev/null)
# The fleet's role logs in with a password (from a 0600 file), as on real servers.
printf 'local all owner trust\nlocal all all scram-sha-256\n' > "$pg/data/pg_hba.conf"
[ ${#as_pg[@]} -eq 0 ] || chown postgres:postgres "$pg/data/pg_hba.conf"
(cd / && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg/data" -l "$pg/log" -o "-h '' -k $pg/sock" -w start >/dev/null)
sql() { "$pgbin/psql" -X -q -At -h "$pg/sock" -U owner -d "${DB:-fleet}" -c "$1"; }
secret=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
DB=postgres sql "CREATE ROLE breach LOGIN PASSWORD '$secret'"
DB=postgres sql "CREATE DATABASE fleet OWNER breach"
printf '%s\n' "$secret" > "$work/pg.pw"; chmod 600 "$work/pg.pw"
url="postgres://breach@$(printf %s "$pg/sock" | sed 's|/|%2F|g')/fleet"
pg_version=$("$pgbin/postgres" --version | sed 's/^postgres (PostgreSQL) //')

echo "generating $SERVERS servers of $ACCOUNTS mailboxes in $fleet" >&2
t0=$(date +%s%N)
gen_line=$(python3 scripts/gen-fleet.py init "$fleet" "$SERVERS" "$ACCOUNTS" --leaked "$LEAKED")
gen_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
combo_rows=$(wc -l < "$fleet/combo.txt")
# One index for the fleet, built once; every server has `rebuild = false` (as when it is
# shipped with install-index).
t0=$(date +%s%N)
"$ba" build -q --index "$fleet/index" --combolist "$fleet/combo.txt"
build_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
names=()
for i in $(seq 1 "$SERVERS"); do
  s=$(printf 's%02d' "$i"); names+=("$s")
  common="index = \"../index\"
rebuild = false
directadmin = [\"da\"]"
  notify="[notify]
from = \"Example Hosting Security <security@isp.example>\"
operator = \"postmaster@isp.example\"
via = \"outbox\""
  cat > "$fleet/$s/pg.toml" <<EOF
$common
state = "state-pg"
out = "out-pg"
state_url = "$url"
state_password_file = "../../pg.pw"
server = "$s"
$notify
outbox = "../outbox-pg"
EOF
  cat > "$fleet/$s/sqlite.toml" <<EOF
$common
state = "state-sqlite"
out = "out-sqlite"
$notify
outbox = "outbox-sqlite"
EOF
done

# audit_bg NIGHT SERVER ENGINE: one audit in the background; its wall time and peak RSS go to
# results.tsv when reaped (exit 0 and 1 are success).
# An audit still running when the budget is spent is stopped (SIGTERM: its transaction rolls
# back), recorded with "stopped" and ends the nights.
audit_bg() {
  local f="$work/t/$1.$2.$3" bound
  bound=$(left); [ "$bound" -ge 60 ] || bound=60
  ( /usr/bin/time -f "%e %M" -o "$f.time" timeout -s TERM "$bound" "$ba" audit -q --config "$fleet/$2/$3.toml" 2> "$f.err" && rc=0 || rc=$?
    echo "$rc" > "$f.rc" ) &
}
STOPPED=0
reap() { # NIGHT SERVER ENGINE
  local f="$work/t/$1.$2.$3" rc flag=done
  rc=$(cat "$f.rc")
  if [ "$rc" = 124 ]; then
    flag=stopped; STOPPED=1
    echo "bench-fleet: night $1: audit of $2 into $3 stopped at the budget" >&2
  elif [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
    echo "bench-fleet: night $1: audit of $2 into $3 failed (exit $rc): $(cat "$f.err")" >&2; exit 1
  fi
  read -r secs rss < <(tail -n 1 "$f.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$secs" "$rss" "$flag" >> "$work/results.tsv"
}
# night NIGHT SERVER...: the servers two at a time, each pair into PostgreSQL and then the same
# pair into their SQLite states (alternating, so both engines see the same machine state).
night() {
  local n=$1; shift
  local list=("$@") i a b
  for ((i = 0; i < ${#list[@]}; i += 2)); do
    a=${list[i]}; b=${list[i + 1]:-}
    for engine in pg sqlite; do
      audit_bg "$n" "$a" "$engine"
      [ -z "$b" ] || audit_bg "$n" "$b" "$engine"
      wait
      reap "$n" "$a" "$engine"
      [ -z "$b" ] || reap "$n" "$b" "$engine"
      [ "$STOPPED" = 0 ] || return 0
    done
    echo "  night $n: $(tail -n 4 "$work/results.tsv" | awk -F'\t' -v n="$n" '$1 == n { printf "%s %s %ss  ", $2, $3, $4 }')" >&2
  done
}
sqlite_bytes() { # SERVER...: the SQLite state files (with WAL and journal, if any) of these servers
  local total=0 s f
  for s in "$@"; do
    for f in "$fleet/$s/state-sqlite/breach-audit.sqlite" "$fleet/$s/state-sqlite/breach-audit.sqlite-wal" "$fleet/$s/state-sqlite/breach-audit.sqlite-journal"; do
      [ -f "$f" ] && total=$((total + $(stat -c %s "$f")))
    done
  done
  echo "$total"
}
med() { # NIGHT ENGINE: the median audit time of that night
  awk -F'\t' -v n="$1" -v e="$2" '$1 == n && $3 == e && $6 == "done" { print $4 }' "$work/results.tsv" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) printf "-"; else printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
stopped_in() { awk -F'\t' -v n="$1" '$1 == n && $6 == "stopped" { printf "%s%s %s after %ss", sep, $2, $3, $4; sep = ", " }' "$work/results.tsv"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
left() { echo $((started + BUDGET - $(date +%s))); }
pending() { sql "SELECT count(*) FROM notices WHERE status IN ('pending', 'failed')"; }
# notify_pg BOUND: one `notify` for the fleet, stopped after BOUND seconds (it commits each
# notice after its message, so what it delivered counts); sets N_SECS N_SENT N_RSS N_RC.
notify_pg() {
  local before t0
  before=$(sql "SELECT count(*) FROM notices WHERE status = 'sent'")
  t0=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$work/notify.rss" timeout -s TERM "$1" "$ba" notify -q --config "$fleet/s01/pg.toml" 2> "$work/notify.err" && N_RC=0 || N_RC=$?
  N_SECS=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  N_SENT=$(( $(sql "SELECT count(*) FROM notices WHERE status = 'sent'") - before ))
  N_RSS=$(tail -n 1 "$work/notify.rss" | awk '{ printf "%.0f", $1 / 1024 }')
  if [ "$N_RC" != 0 ] && [ "$N_RC" != 124 ]; then
    echo "bench-fleet: notify failed (exit $N_RC): $(cat "$work/notify.err")" >&2; exit 1
  fi
}

echo "night 1: $SERVERS first audits, two at a time, PostgreSQL then SQLite" >&2
t0=$(date +%s%N)
night 1 "${names[@]}"
night1_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.0f", (b - a) / 1e9 }')
pg1=$(sql "SELECT pg_database_size('fleet')")
sq1=$(sqlite_bytes "${names[@]}")
sq_files=$(ls "$fleet"/s*/state-sqlite/breach-audit.sqlite 2>/dev/null | wc -l)
findings1=$(sql "SELECT count(*) FROM findings")
homes1=$(sql "SELECT count(*) FROM homes")
marks1=$(sql "SELECT count(*) FROM hash_marks")
pending1=$(pending)

# The fleet's notices, one runner; next to it one server's SQLite notify (its own notices).
bound=$(( $(left) / 2 )); [ "$bound" -ge 60 ] || bound=60
echo "notify: $pending1 pending notices (stopped after ${bound}s if still running)" >&2
# When the first message reaches the outbox: before it, notify works out what is owed.
( while ! ls "$fleet/outbox-pg" 2>/dev/null | grep -q -m 1 '\.eml$'; do sleep 0.05; done
  date +%s%N > "$work/first" ) &
poller=$!
nt_t0=$(date +%s%N)
notify_pg "$bound"
nt_secs=$N_SECS; nt_sent=$N_SENT; nt_rss=$N_RSS; nt_rc=$N_RC
kill "$poller" 2>/dev/null || true; wait "$poller" 2>/dev/null || true
if [ -s "$work/first" ]; then
  nt_first=$(awk -v a="$nt_t0" -v b="$(cat "$work/first")" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  nt_after="; the first message after ${nt_first}s, the rest at $(awk -v n="$nt_sent" -v s="$nt_secs" -v f="$nt_first" 'BEGIN { d = s - f; if (d <= 0) d = 0.01; printf "%.0f", (n - 1) / d }')/s"
else
  nt_after="; no message reached the outbox"
fi
nt_left=$(pending)
nt_files=$(find "$fleet/outbox-pg" -name '*.eml' 2>/dev/null | wc -l)
sq_pending=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT count(*) FROM notices WHERE status = 'pending'\").fetchone()[0])" "$fleet/s01/state-sqlite/breach-audit.sqlite")
t0=$(date +%s%N)
"$ba" notify -q --config "$fleet/s01/sqlite.toml"
sq_notify_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
for s in "${names[@]:1}"; do
  [ ! -f "$fleet/$s/state-sqlite/breach-audit.sqlite" ] || "$ba" notify -q --config "$fleet/$s/sqlite.toml"
done
pg0=$(sql "SELECT pg_database_size('fleet')")
churners=("${names[@]:0:CHURN_SERVERS}")
sq0=$(sqlite_bytes "${churners[@]}")
pg_sizes=("$pg0")

# Nights of churn on CHURN_SERVERS servers: new leaks, changed passwords, mailboxes deleted and
# created; the index rebuilt once for the fleet; each night's audits then its notices.
growth_rows=""
nights_run=0
last_night=60
for n in $(seq 2 $((NIGHTS + 1))); do
  if [ "$STOPPED" = 1 ] || [ "$(left)" -lt $((last_night + 30)) ]; then
    echo "bench-fleet: budget spent: $nights_run of $NIGHTS churn nights run" >&2; break
  fi
  tn=$(date +%s)
  did=$(python3 scripts/gen-fleet.py night "$fleet" "$n" "${churners[@]}" --rate "$CHURN")
  "$ba" build -q --index "$fleet/index" --combolist "$fleet/combo.txt"
  night "$n" "${churners[@]}"
  if [ "$STOPPED" = 1 ]; then
    growth_rows+="| $((n - 1)) | ${did// /, } | $(med "$n" pg) s; stopped at the budget: $(stopped_in "$n") | $(med "$n" sqlite) s | - | $(mb "$(sql "SELECT pg_database_size('fleet')")") MB | |
"
    break
  fi
  bound=$(( $(left) - 30 )); [ "$bound" -ge 30 ] || bound=30
  notify_pg "$bound"
  for s in "${churners[@]}"; do "$ba" notify -q --config "$fleet/$s/sqlite.toml"; done
  nights_run=$((nights_run + 1))
  last_night=$(( $(date +%s) - tn ))
  size=$(sql "SELECT pg_database_size('fleet')")
  pg_sizes+=("$size")
  sqs=$(sqlite_bytes "${churners[@]}")
  growth_rows+="| $((n - 1)) | ${did// /, } | $(med "$n" pg) s | $(med "$n" sqlite) s | $N_SENT in ${N_SECS}s$([ "$N_RC" = 124 ] && echo ' (stopped)') | $(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }') MB | $(awk -v b="$sqs" 'BEGIN { printf "%.2f", b / 1048576 }') MB |
"
  echo "  night $n: $did; postgres $size bytes, sqlite ($CHURN_SERVERS servers) $sqs bytes; ${last_night}s" >&2
done
pgN=$(sql "SELECT pg_database_size('fleet')")
tables=$(sql "SELECT string_agg(relname || ' ' || round(pg_total_relation_size(relid) / 1048576.0, 1) || ' MB (' || n_live_tup || ' live rows, ' || n_dead_tup || ' dead)', ', ' ORDER BY pg_total_relation_size(relid) DESC)
  FROM (SELECT * FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC LIMIT 5) t")
sqN=$(sqlite_bytes "${churners[@]}")

# Figures.
stats=$(python3 - "$work/results.tsv" <<'PY'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
t = {(r[1], r[2]): float(r[3]) for r in rows if r[0] == "1" and r[5] == "done"}
rss = {(r[1], r[2]): int(r[4]) for r in rows if r[0] == "1" and r[5] == "done"}
servers = sorted({s for s, _ in t if (s, "pg") in t and (s, "sqlite") in t})
print("measured=%d" % len(servers))
pg = [t[s, "pg"] for s in servers]; sq = [t[s, "sqlite"] for s in servers]
ratio = [t[s, "pg"] / max(t[s, "sqlite"], 0.01) for s in servers]
f = lambda xs, fmt="%.2f": (fmt % st.median(xs), fmt % min(xs), fmt % max(xs))
print("pg_med=%s pg_min=%s pg_max=%s" % f(pg))
print("sq_med=%s sq_min=%s sq_max=%s" % f(sq))
print("r_med=%s r_min=%s r_max=%s" % f(ratio))
print("pg_rss=%d sq_rss=%d" % (max(rss[s, "pg"] for s in servers) // 1024, max(rss[s, "sqlite"] for s in servers) // 1024))
# How the time grows with the fleet already in the database: servers in groups of tenths.
g = max(1, len(servers) // 5)
groups = []
for i in range(0, len(servers), g):
    part = servers[i:i + g]
    groups.append("| %s-%s | %.2f s | %.2f s | %.1fx |" % (part[0], part[-1], st.median(t[s, "pg"] for s in part),
                  st.median(t[s, "sqlite"] for s in part), st.median(t[s, "pg"] / max(t[s, "sqlite"], 0.01) for s in part)))
print("groups='%s'" % "\n".join(groups))
PY
)
eval "$stats"
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s == 0) s = 0.01; printf "%.0f", n / s }'; }
met=$(awk -v r="$r_med" 'BEGIN { print (r <= 2) ? "**met**" : "not met" }')
if [ "$nights_run" -gt 0 ]; then
  per_night=$(( (pgN - pg0) / nights_run ))
  sq_per_night=$(( (sqN - sq0) / nights_run ))
  # The later half of the nights: once autovacuum has run, freed space is reused.
  half=$(( nights_run / 2 )); [ "$half" -ge 1 ] || half=1
  late=$(( (pg_sizes[nights_run] - pg_sizes[nights_run - half]) / half ))
  fleet_gb() { awk -v b="$1" -v k="$((SERVERS * 365))" -v c="$CHURN_SERVERS" 'BEGIN { printf "%.2f", b * k / c / 1073741824 }'; }
  year="PostgreSQL grew from $(mb "$pg0") MB (after night 1 and its notices) to $(mb "$pgN") MB after $nights_run night(s) of churn$([ "$nights_run" = "$NIGHTS" ] || echo " (only $nights_run of the $NIGHTS nights ran within the budget)"):
$(mb "$per_night") MB per night over all of them, $(mb "$late") MB per night over the last $half (later nights reuse space that autovacuum
freed). Extrapolated to the whole fleet churning alike ($SERVERS/$CHURN_SERVERS x the $CHURN_SERVERS servers' growth) for 365 nights:
**$(fleet_gb "$late") GB per simulated year at the later rate, $(fleet_gb "$per_night") GB at the overall one** (runs and moves
keep history; findings, notices and homes update rows, whose dead versions autovacuum frees for reuse). The same
$CHURN_SERVERS servers' SQLite files grew by $(awk -v b="$sq_per_night" 'BEGIN { printf "%.3f", b / 1048576 }') MB per night together: $(awk -v b="$sq_per_night" -v c="$CHURN_SERVERS" 'BEGIN { printf "%.1f", b * 365 / c / 1048576 }') MB per server per year ($(fleet_gb "$sq_per_night") GB for $SERVERS servers)."
else
  year="No night of churn ran within the budget (BUDGET=$BUDGET s): no growth figure."
fi
if [ "$nt_rc" = 124 ]; then
  nt_line="**stopped after ${nt_secs}s** (the run's budget) having handed **$nt_sent of $pending1** notices to the outbox ($(rate "$nt_sent" "$nt_secs")/s over the whole run$nt_after, $nt_left still pending)"
else
  nt_line="**$nt_sent notices handed to the outbox in ${nt_secs}s** ($(rate "$nt_sent" "$nt_secs")/s over the whole run$nt_after)"
fi

cat > BENCHMARKS.fleet.md <<MD
## Fleet: one PostgreSQL state for $SERVERS servers

\`scripts/bench-fleet.sh\` ($(date -u +%F), breach-audit $commit, $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM,
load average $load_start at the start and $(cut -d' ' -f1-3 /proc/loadavg) at the end (anything else running shows here),
PostgreSQL $pg_version with its default settings (fsync on, \`shared_buffers\` 128 MB, \`work_mem\` 4 MB) on a
unix socket, the fleet's role logging in with a password from a 0600 file). $SERVERS generated
DirectAdmin servers (\`scripts/gen-fleet.py\`: $gen_line; ${gen_s}s)
of $ACCOUNTS mailboxes each, stored as {SSHA256} (verified offline in microseconds: the run measures
the state, not the hashing) over domains of 20 mailboxes, each domain its own owner and contact;
one mailbox per domain has its current password in a combolist ($combo_rows rows), so each domain has a
confirmed leak and one notice. One index, built once (${build_s}s), shared by every server with
\`rebuild = false\`. Each pair of servers audits into the shared database, then the same pair into
their own SQLite states (the default), so both engines see the same machine state.

| night 1: first audit of each server, two at a time | PostgreSQL (shared) | SQLite (own state) | PostgreSQL / SQLite |
|---|---|---|---|
| wall time per server: median | ${pg_med} s | ${sq_med} s | ${r_med}x (goal at most 2x: $met) |
| min | ${pg_min} s | ${sq_min} s | ${r_min}x |
| max | ${pg_max} s | ${sq_max} s | ${r_max}x |
| peak RSS, largest | ${pg_rss} MB | ${sq_rss} MB | |

The same, by position in the night (a server audited later finds more of the fleet in the
database; SQLite states are each a server's own):

| servers | PostgreSQL median | SQLite median | ratio median |
|---|---|---|---|
$groups

Night 1 took ${night1_s}s for its $(awk -F'\t' '$1 == 1' "$work/results.tsv" | wc -l) audits$([ "$measured" = "$SERVERS" ] || echo " (**stopped at the budget**: $measured of $SERVERS servers audited on both engines; $(stopped_in 1))"). State after it: PostgreSQL $(mb "$pg1") MB
($findings1 findings, $homes1 homes, $marks1 hash marks); SQLite $(mb "$sq1") MB for the $sq_files files
($(mb $((sq1 / (sq_files > 0 ? sq_files : 1)))) MB each).

**Notices.** \`breach-audit notify --config ...\` (\`via = "outbox"\`), one runner for the fleet, with
$pending1 notices pending: $nt_line, peak RSS $nt_rss MB; $nt_files .eml files in the outbox. One server's
own SQLite state: $sq_pending notices in ${sq_notify_s}s ($(rate "$sq_pending" "$sq_notify_s")/s).

**State growth.** Nights of churn on $CHURN_SERVERS servers (each night $CHURN of each one's mailboxes: 40% of
the changes a leaked mailbox's password changed, 40% a clean mailbox's password newly leaked, 10%
mailboxes deleted, 10% created; the index rebuilt; each night's audits, then its notices):

| churn night | changes (all $CHURN_SERVERS servers) | audit median, PostgreSQL | audit median, SQLite | notify, PostgreSQL | PostgreSQL database | SQLite, $CHURN_SERVERS files |
|---|---|---|---|---|---|---|
$growth_rows
$year

Largest PostgreSQL tables at the end (with indexes; rows as the statistics count them): $tables.
MD
echo "wrote BENCHMARKS.fleet.md ($(( $(date +%s) - started ))s)" >&2
cat BENCHMARKS.fleet.md
