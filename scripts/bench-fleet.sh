#!/usr/bin/env bash
# A fleet in one ledger (issues 28 and 41): for each fleet in FLEETS, SERVERS generated DirectAdmin
# servers of ACCOUNTS mailboxes each audit into one shared PostgreSQL, two at a time, each next to
# the same server's audit into its own SQLite state (the default) in the same run; then one
# `notify` hands the fleet's notices to an outbox, and every server's own SQLite `notify` hands the
# same notices to its own. After the first fleet, a simulated year: nights of churn on a few of its
# servers in fixed wall-time slots, with retention (`state_keep`) of HORIZON slots, the PostgreSQL
# size read after a VACUUM each night. Every goal of issue 41 is printed and written as
# `goal: <text>: <figure> (met|NOT met)`. Writes BENCHMARKS.fleet.md (scripts/bench.sh includes it
# in BENCHMARKS.md).
#
#   scripts/bench-fleet.sh          # FLEETS="50:20000 200:5000" HORIZON=6 NIGHTS=14 CHURN_SERVERS=5
#
# Environment: FLEETS (servers:accounts per fleet, in the order run; SERVERS and ACCOUNTS alone
# give one fleet), LEAKED (share of mailboxes whose current password is in the combolist, default
# 0.05), CHURN_SERVERS (how many of the first fleet's servers churn in the simulated year, default
# 5; 0 skips it), NIGHTS (its nights, default 2*HORIZON+2), HORIZON (the retention horizon in
# nights, default 6), SLOT (seconds per night, padded with sleep; default 360/NIGHTS, so the year
# takes about 6 minutes), CHURN (share of a server's mailboxes changed per night, default 0.005),
# BUDGET (seconds the whole run may take, default 2400: shared between the fleets by their
# mailboxes after the year's NIGHTS*SLOT; a later fleet whose measured cost would not fit is scaled
# down through its accounts; a notify still running at its share is stopped and what it delivered
# is counted; no night starts once it is spent), KEEP=1 (keep the work files), BIN (the
# breach-audit binary). Retention is used when `audit --help` lists --state-keep; otherwise the
# year runs without it and its goal is not met. Work files go to $BENCH_DIR/fleet (default
# bench-work/fleet); PostgreSQL runs from a temporary directory (data and unix socket, `-h ''`, the
# server's default settings: fsync on) as the current user, or as `postgres` under root
# (PostgreSQL refuses root), and is stopped on exit. Needs Debian's postgresql (scripts/test.sh
# installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FLEETS:-}" ] && { [ -n "${SERVERS:-}" ] || [ -n "${ACCOUNTS:-}" ]; }; then
  FLEETS="${SERVERS:-50}:${ACCOUNTS:-20000}"
fi
FLEETS=${FLEETS:-"50:20000 200:5000"}
LEAKED=${LEAKED:-0.05}
HORIZON=${HORIZON:-6}
NIGHTS=${NIGHTS:-$((2 * HORIZON + 2))}
CHURN_SERVERS=${CHURN_SERVERS:-5}
CHURN=${CHURN:-0.005}
SLOT=${SLOT:-$((360 / (NIGHTS > 0 ? NIGHTS : 1)))}
[ "$SLOT" -ge 5 ] || SLOT=5
BUDGET=${BUDGET:-2400}
started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
read -r -a fleets <<< "$FLEETS"
for f in "${fleets[@]}"; do
  [[ "$f" =~ ^[1-9][0-9]*:[1-9][0-9]*$ ]] || { echo "bench-fleet: FLEETS: \"$f\" is not servers:accounts" >&2; exit 2; }
done
work=$(realpath -m "${BENCH_DIR:-bench-work}/fleet")
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; BIN=target/release/breach-audit; fi
ba=$(realpath "$BIN")
# The tree the binary was built from (the tree may move on during the run).
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] || commit="$commit with uncommitted changes in src/"
pgbin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
[ -x "$pgbin/initdb" ] || { echo "bench-fleet: PostgreSQL not found under /usr/lib/postgresql (scripts/test.sh installs it)" >&2; exit 2; }
export LC_ALL=C
rm -rf "$work"; mkdir -p "$work"
# Retention: the binary knows `state_keep` when its audit has --state-keep.
if "$ba" audit --help 2>/dev/null | grep -q -- --state-keep; then retention=1; else retention=0; fi

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
sql() { PGOPTIONS="-c client_min_messages=warning" "$pgbin/psql" -X -q -At -h "$pg/sock" -U owner -d "${DB:-fleet}" -c "$1"; }
secret=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
DB=postgres sql "CREATE ROLE breach LOGIN PASSWORD '$secret'"
printf '%s\n' "$secret" > "$work/pg.pw"; chmod 600 "$work/pg.pw"
url="postgres://breach@$(printf %s "$pg/sock" | sed 's|/|%2F|g')/fleet"
pg_version=$("$pgbin/postgres" --version | sed 's/^postgres (PostgreSQL) //')

now_ns() { date +%s%N; }
secs_since() { awk -v a="$1" -v b="$(now_ns)" -v f="${2:-%.2f}" 'BEGIN { printf f, (b - a) / 1e9 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
mb2() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s == 0) s = 0.01; printf "%.0f", n / s }'; }
# The section's deadline: left() is what remains of it.
deadline=$((started + BUDGET))
left() { echo $((deadline - $(date +%s))); }
GOALS=()
goal() { # TEXT FIGURE MET(0|1)
  local line
  line="goal: $1: $2 ($([ "$3" = 1 ] && echo met || echo 'NOT met'))"
  GOALS+=("$line"); echo "$line" >&2
}
# The goals, the fleets' first and the year's last.
goals() { printf '%s\n' "${GOALS[@]}" | grep -v '^goal: a simulated year' || true; printf '%s\n' "${GOALS[@]}" | grep '^goal: a simulated year' || true; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "-" && a + 0 <= b + 0) ? 1 : 0 }'; }

# audit_bg NIGHT SERVER ENGINE: one audit in the background; its wall time and peak RSS go to
# results.tsv when reaped (exit 0 and 1 are success).
# An audit still running when the budget is spent is stopped (SIGTERM: its transaction rolls
# back), recorded with "stopped" and ends the nights.
audit_bg() {
  local f="$fw/t/$1.$2.$3" bound
  bound=$(left); [ "$bound" -ge 60 ] || bound=60
  ( /usr/bin/time -f "%e %M" -o "$f.time" timeout -s TERM "$bound" "$ba" audit -q --config "$fleet/$2/$3.toml" 2> "$f.err" && rc=0 || rc=$?
    echo "$rc" > "$f.rc" ) &
}
STOPPED=0
reap() { # NIGHT SERVER ENGINE
  local f="$fw/t/$1.$2.$3" rc flag="done" secs rss
  rc=$(cat "$f.rc")
  if [ "$rc" = 124 ]; then
    flag=stopped; STOPPED=1
    echo "bench-fleet: night $1: audit of $2 into $3 stopped at the budget" >&2
  elif [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
    echo "bench-fleet: night $1: audit of $2 into $3 failed (exit $rc): $(cat "$f.err")" >&2; exit 1
  fi
  read -r secs rss < <(tail -n 1 "$f.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$secs" "$rss" "$flag" >> "$fw/results.tsv"
}
# night NIGHT SERVER...: the servers two at a time, each pair into PostgreSQL and then the same
# pair into their SQLite states (alternating, so both engines see the same machine state).
night() {
  local n=$1; shift
  local list=("$@") i a b engine from
  for ((i = 0; i < ${#list[@]}; i += 2)); do
    a=${list[i]}; b=${list[i + 1]:-}
    from=$(($(wc -l < "$fw/results.tsv") + 1))
    for engine in pg sqlite; do
      audit_bg "$n" "$a" "$engine"
      [ -z "$b" ] || audit_bg "$n" "$b" "$engine"
      wait
      reap "$n" "$a" "$engine"
      [ -z "$b" ] || reap "$n" "$b" "$engine"
      [ "$STOPPED" = 0 ] || return 0
    done
    [ "$n" != 1 ] || [ $(((i / 2) % 10)) = 0 ] || continue
    echo "  night $n: $(tail -n "+$from" "$fw/results.tsv" | awk -F'\t' '{ printf "%s %s %ss  ", $2, $3, $4 }')" >&2
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
  awk -F'\t' -v n="$1" -v e="$2" '$1 == n && $3 == e && $6 == "done" { print $4 }' "$fw/results.tsv" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR == 0) printf "-"; else printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
stopped_in() { awk -F'\t' -v n="$1" '$1 == n && $6 == "stopped" { printf "%s%s %s after %ss", sep, $2, $3, $4; sep = ", " }' "$fw/results.tsv"; }
emls() { [ -d "$1" ] || { echo 0; return; }; find "$1" -name '*.eml' | wc -l; } # DIR: messages in an outbox
pending() { sql "SELECT count(*) FROM notices WHERE status IN ('pending', 'failed')"; }
vacuumed_size() { sql "VACUUM" >/dev/null; sql "SELECT pg_database_size('fleet')"; }
# notify_pg BOUND: one `notify` for the fleet, stopped after BOUND seconds (it commits each
# notice after its message, so what it delivered counts: the messages it wrote to the outbox,
# the operator's included, as for SQLite); sets N_SECS N_SENT N_RSS N_RC.
notify_pg() {
  local before t0
  # Messages in the outbox (as for SQLite below): a count of sent notices would fall when
  # retention prunes old ones in the same run.
  before=$(emls "$fleet/outbox-pg")
  t0=$(now_ns)
  /usr/bin/time -f "%M" -o "$fw/notify.rss" timeout -s TERM "$1" "$ba" notify -q --config "$fleet/s01/pg.toml" 2> "$fw/notify.err" && N_RC=0 || N_RC=$?
  N_SECS=$(secs_since "$t0")
  N_SENT=$(( $(emls "$fleet/outbox-pg") - before ))
  N_RSS=$(tail -n 1 "$fw/notify.rss" | awk '{ printf "%.0f", $1 / 1024 }')
  if [ "$N_RC" != 0 ] && [ "$N_RC" != 124 ]; then
    echo "bench-fleet: notify failed (exit $N_RC): $(cat "$fw/notify.err")" >&2; exit 1
  fi
}
# notify_sqlite SERVER...: each server's own `notify` on its SQLite state, in turn, while time is
# left; sets Q_SECS (their wall times summed, process starts included), Q_SENT (messages they
# wrote to their outboxes) and Q_DONE (servers notified).
notify_sqlite() {
  local s before t0 rc
  Q_SECS=0; Q_SENT=0; Q_DONE=0
  for s in "$@"; do
    [ "$Q_DONE" = 0 ] || [ "$(left)" -ge 5 ] || break # the first server runs whatever is left
    before=$(emls "$fleet/$s/outbox-sqlite")
    t0=$(now_ns)
    timeout -s TERM "$(( $(left) > 60 ? $(left) : 60 ))" "$ba" notify -q --config "$fleet/$s/sqlite.toml" 2> "$fw/notify-sqlite.err" && rc=0 || rc=$?
    Q_SECS=$(awk -v q="$Q_SECS" -v d="$(secs_since "$t0" %.4f)" 'BEGIN { printf "%.3f", q + d }')
    Q_SENT=$((Q_SENT + $(emls "$fleet/$s/outbox-sqlite") - before))
    [ "$rc" != 124 ] || break
    [ "$rc" = 0 ] || { echo "bench-fleet: notify of $s on SQLite failed (exit $rc): $(cat "$fw/notify-sqlite.err")" >&2; exit 1; }
    Q_DONE=$((Q_DONE + 1))
  done
}
# configs SERVER...: each server's two configs (PostgreSQL and its own SQLite), with KEEP_LINE
# (a top-level `state_keep`, or nothing) first.
configs() {
  local s
  for s in "$@"; do
    cat > "$fleet/$s/pg.toml" <<EOF
${KEEP_LINE:-}
index = "../index"
rebuild = false
directadmin = ["da"]
state = "state-pg"
out = "out-pg"
state_url = "$url"
state_password_file = "../../../pg.pw"
server = "$s"
[notify]
from = "Example Hosting Security <security@isp.example>"
operator = "postmaster@isp.example"
via = "outbox"
outbox = "../outbox-pg"
EOF
    cat > "$fleet/$s/sqlite.toml" <<EOF
${KEEP_LINE:-}
index = "../index"
rebuild = false
directadmin = ["da"]
state = "state-sqlite"
out = "out-sqlite"
[notify]
from = "Example Hosting Security <security@isp.example>"
operator = "postmaster@isp.example"
via = "outbox"
outbox = "outbox-sqlite"
EOF
  done
}

# The budget: the year first (NIGHTS slots and a minute), the rest shared by the fleets in
# proportion to their mailboxes; time a fleet leaves unused goes to the next.
do_year=0
[ "$CHURN_SERVERS" -gt 0 ] && [ "$NIGHTS" -gt 0 ] && do_year=1
year_reserve=$((do_year * (NIGHTS * SLOT + 60)))
total_mb=0
for f in "${fleets[@]}"; do total_mb=$((total_mb + ${f%%:*} * ${f##*:})); done
share() { echo $(( (BUDGET - year_reserve) * $1 / total_mb )); } # MAILBOXES

# year: the simulated year on the first CHURN_SERVERS servers of the current fleet; writes
# $work/year.md and its goal.
year() {
  local churners=("${names[@]:0:CHURN_SERVERS}") keep_s=$((HORIZON * SLOT)) n k t0 tn did size prev sqs wall slot_at
  local sizes=() rows="" nights_run=0 overruns=0 note head
  if [ "$retention" = 1 ]; then
    KEEP_LINE="state_keep = \"${keep_s}s\"" configs "${churners[@]}"
    head="with retention of $HORIZON nights"
    note="With retention: \`state_keep = \"${keep_s}s\"\` ($HORIZON nights of ${SLOT}s) in the churning servers' configs (both engines)."
  else
    head="without retention"
    note="**Without retention**: this binary's \`audit --help\` has no --state-keep, so no \`state_keep\` was set."
    echo "bench-fleet: the binary has no --state-keep: the simulated year runs without retention" >&2
  fi
  echo "simulated year: $NIGHTS nights of ${SLOT}s on ${#churners[@]} servers, $head" >&2
  size=$(vacuumed_size); sizes+=("$size"); prev=$size
  local sq0
  sq0=$(sqlite_bytes "${churners[@]}")
  t0=$(date +%s)
  for n in $(seq 1 "$NIGHTS"); do
    slot_at=$((t0 + (n - 1) * SLOT))
    [ "$(date +%s)" -ge "$slot_at" ] || sleep $((slot_at - $(date +%s)))
    if [ "$STOPPED" = 1 ] || [ "$(left)" -lt 10 ]; then
      echo "bench-fleet: budget spent: $nights_run of $NIGHTS nights of the year run" >&2; break
    fi
    tn=$(now_ns)
    k=$((n + 1))
    did=$(python3 scripts/gen-fleet.py night "$fleet" "$k" "${churners[@]}" --rate "$CHURN")
    "$ba" build -q --index "$fleet/index" --combolist "$fleet/combo.txt"
    night "$k" "${churners[@]}"
    [ "$STOPPED" = 0 ] || { echo "bench-fleet: the year stopped at the budget in night $n ($(stopped_in "$k"))" >&2; break; }
    notify_pg "$(( $(left) > 10 ? $(left) : 10 ))"
    notify_sqlite "${churners[@]}"
    size=$(vacuumed_size); sizes+=("$size")
    sqs=$(sqlite_bytes "${churners[@]}")
    wall=$(secs_since "$tn" %.1f)
    nights_run=$n
    awk -v w="$wall" -v s="$SLOT" 'BEGIN { exit !(w > s) }' && overruns=$((overruns + 1))
    rows+="| $n$([ "$retention" = 0 ] || [ "$n" -le "$HORIZON" ] || echo ' (after the horizon)') | ${did// /, } | $(med "$k" pg) s | $(med "$k" sqlite) s | $N_SENT in ${N_SECS}s | ${wall}s | $(mb "$size") MB | $(awk -v d="$((size - prev))" 'BEGIN { printf "%+.2f", d / 1048576 }') MB | $(awk -v b="$sqs" 'BEGIN { printf "%.2f", b / 1048576 }') MB |
"
    echo "  year night $n: $did; postgres after VACUUM $size bytes ($((size - prev)) since the night before), sqlite $sqs bytes; ${wall}s" >&2
    prev=$size
  done
  local scale after=$((nights_run - HORIZON)) text figure met=0 hist_rate window growth
  # Per server and per 20,000 accounts: the churning servers' growth / their count x 20000/ACCOUNTS.
  scale=$(awk -v c="${#churners[@]}" -v a="$fleet_accounts" 'BEGIN { printf "%.6f", 20000 / a / c }')
  per_server_mb() { awk -v b="$1" -v s="$scale" 'BEGIN { printf "%.2f", b * s / 1048576 }'; }
  if [ "$nights_run" -gt 0 ]; then
    hist_rate=$(( (sizes[nights_run < HORIZON ? nights_run : HORIZON] - sizes[0]) / (nights_run < HORIZON ? nights_run : HORIZON) ))
  fi
  if [ "$retention" = 1 ] && [ "$after" -gt 0 ]; then
    window=$((sizes[HORIZON] - sizes[0]))
    growth=$(( (sizes[nights_run] - sizes[HORIZON]) / after ))
    figure=$(awk -v w="$window" -v g="$growth" -v s="$scale" 'BEGIN { printf "%.2f", (w + (g > 0 ? g : 0) * 365) * s / 1048576 }')
    met=$(le "$figure" 5)
    text="After the horizon (nights $((HORIZON + 1))-$nights_run) PostgreSQL grew by **$(mb2 "$growth") MB per night** for the
${#churners[@]} servers ($(per_server_mb "$growth") MB per night per 20,000-account server). Steady state per
20,000-account server per year = (the growth up to the horizon, the history retention keeps: $(mb2 "$window") MB;
plus the growth per night after it x 365) / ${#churners[@]} servers x 20000/$fleet_accounts accounts = **$figure MB**."
    figure="$figure MB (the horizon's $(per_server_mb "$window") MB, then $(per_server_mb "$growth") MB per night, per server)"
  elif [ "$nights_run" -gt 0 ]; then
    growth=$(( (sizes[nights_run] - sizes[0]) / nights_run ))
    figure=$(awk -v g="$growth" -v s="$scale" 'BEGIN { printf "%.2f", (g > 0 ? g : 0) * 365 * s / 1048576 }')
    if [ "$retention" = 1 ]; then
      text="Only $nights_run night(s) ran, none after the horizon of $HORIZON: no steady-state figure. PostgreSQL grew by
$(mb2 "$growth") MB per night for the ${#churners[@]} servers: **$figure MB per 20,000-account server per year** at that rate."
      figure="$figure MB per year at the rate before the horizon; no night after it ran"
    else
      text="Without retention PostgreSQL grew by **$(mb2 "$growth") MB per night** for the ${#churners[@]} servers: **$figure MB per
20,000-account server per year** (x 365 / ${#churners[@]} servers x 20000/$fleet_accounts accounts), growing every year."
      figure="$figure MB without retention, every year (no state_keep in this binary)"
    fi
  else
    text="No night of the year ran within the budget (BUDGET=$BUDGET s): no growth figure."
    figure="no night ran"
  fi
  goal "a simulated year ($nights_run nights of ${SLOT}s on ${#churners[@]} servers of $fleet_accounts accounts, CHURN=$CHURN): steady state at most 5 MB per 20000-account server per year" "$figure" "$met"
  [ -z "${hist_rate:-}" ] || text+="
Over nights 1-$((nights_run < HORIZON ? nights_run : HORIZON)) the ledger grew by $(per_server_mb "$hist_rate") MB per night per 20,000-account server: the history
a horizon of a year (\`state_keep = \"400d\"\`) would keep is about $(awk -v g="$hist_rate" -v s="$scale" 'BEGIN { printf "%.1f", g * 365 * s / 1048576 }') MB per server at this churn."
  local sqN
  sqN=$(sqlite_bytes "${churners[@]}")
  [ "$nights_run" = 0 ] || text+=" The same ${#churners[@]} servers' SQLite files grew by $(awk -v b="$(( (sqN - sq0) / nights_run ))" 'BEGIN { printf "%.3f", b / 1048576 }') MB per night together."
  [ "$overruns" = 0 ] || text+=" **$overruns night(s) took longer than their ${SLOT}s slot** (the next one then started late, so the horizon held fewer nights)."
  cat > "$work/year.md" <<MD
### A simulated year: $NIGHTS nights on ${#churners[@]} of the $fleet_servers servers, $head

$note Each night starts at a fixed wall time, ${SLOT}s after the one before (padded with sleep), so
\`state_keep\` in seconds stands for a horizon in nights. Each night $CHURN of each churning server's
mailboxes change (40% a leaked mailbox's password changed, 40% a clean mailbox's password newly
leaked, 10% mailboxes deleted, 10% created); the index is rebuilt; the servers audit (PostgreSQL
then SQLite, two at a time); the notices go out; then \`VACUUM\` (not FULL: freed space stays in the
files for reuse) and the database's size. Before night 1 (after the fleet's first night, its
notices and a VACUUM) PostgreSQL held $(mb "${sizes[0]}") MB.

| night | changes (all ${#churners[@]} servers) | audit median, PostgreSQL | audit median, SQLite | notify, PostgreSQL | night's wall time | PostgreSQL after VACUUM | since the night before | SQLite, ${#churners[@]} files |
|---|---|---|---|---|---|---|---|---|
$rows
$text
MD
}

# run_fleet INDEX SERVERS ACCOUNTS: one fleet, in a fresh database; writes $work/fleetN.md and
# its goals, and the year after the first fleet.
run_fleet() {
  local idx=$1 s i gen_line gen_s build_s combo_rows night1_s pg1 sq1 sq_files findings1 homes1 marks1 pending1 bound
  local t0 nt_t0 poller nt_first nt_after nt_line nt_left nt_files stats scaled="" est avail
  fleet_servers=$2; fleet_accounts=$3
  fw="$work/f$idx"; fleet="$fw/servers"
  mkdir -p "$fw/t"; : > "$fw/results.tsv"
  # This fleet's deadline: what the later fleets (and the year, if still to come) do not need.
  local later=0 f
  for f in "${fleets[@]:idx}"; do later=$((later + $(share $(( ${f%%:*} * ${f##*:} ))))); done
  deadline=$((started + BUDGET - later - (idx == 1 ? year_reserve : 0)))
  # A later fleet measured too costly (from the seconds per mailbox the earlier ones took) gets
  # fewer accounts per server.
  if [ -n "${per_mailbox:-}" ]; then
    avail=$(( $(left) * 9 / 10 ))
    est=$(awk -v p="$per_mailbox" -v m="$((fleet_servers * fleet_accounts))" 'BEGIN { printf "%.0f", p * m }')
    if [ "$est" -gt "$avail" ]; then
      local want=$fleet_accounts
      fleet_accounts=$(( fleet_accounts * avail / est / 20 * 20 ))
      [ "$fleet_accounts" -ge 100 ] || fleet_accounts=100
      scaled=" (scaled down from $want to fit the budget: the earlier fleet took $(awk -v p="$per_mailbox" 'BEGIN { printf "%.0f", p * 1e6 }') s per million mailboxes and ${avail}s were left)"
      echo "bench-fleet: fleet $idx scaled down to $fleet_accounts accounts per server to fit the budget" >&2
    fi
  fi
  local f_t0
  f_t0=$(date +%s)
  DB=postgres sql "DROP DATABASE IF EXISTS fleet"
  DB=postgres sql "CREATE DATABASE fleet OWNER breach"

  echo "fleet $idx: generating $fleet_servers servers of $fleet_accounts mailboxes in $fleet" >&2
  t0=$(now_ns)
  gen_line=$(python3 scripts/gen-fleet.py init "$fleet" "$fleet_servers" "$fleet_accounts" --leaked "$LEAKED")
  gen_s=$(secs_since "$t0" %.1f)
  combo_rows=$(wc -l < "$fleet/combo.txt")
  # One index for the fleet, built once; every server has `rebuild = false` (as when it is
  # shipped with install-index).
  t0=$(now_ns)
  "$ba" build -q --index "$fleet/index" --combolist "$fleet/combo.txt"
  build_s=$(secs_since "$t0")
  names=()
  for i in $(seq 1 "$fleet_servers"); do names+=("$(printf 's%02d' "$i")"); done
  KEEP_LINE="" configs "${names[@]}"

  echo "fleet $idx, night 1: $fleet_servers first audits, two at a time, PostgreSQL then SQLite" >&2
  STOPPED=0
  t0=$(now_ns)
  night 1 "${names[@]}"
  night1_s=$(secs_since "$t0" %.0f)
  pg1=$(sql "SELECT pg_database_size('fleet')")
  sq1=$(sqlite_bytes "${names[@]}")
  sq_files=$(find "$fleet" -path '*/state-sqlite/breach-audit.sqlite' | wc -l)
  findings1=$(sql "SELECT count(*) FROM findings")
  homes1=$(sql "SELECT count(*) FROM homes")
  marks1=$(sql "SELECT count(*) FROM hash_marks")
  pending1=$(pending)

  # The fleet's notices, one runner; then every server's own SQLite notify: the same notices.
  bound=$(( $(left) * 55 / 100 )); [ "$bound" -ge 60 ] || bound=60
  echo "fleet $idx, notify: $pending1 pending notices (stopped after ${bound}s if still running)" >&2
  # When the first message reaches the outbox: before it, notify works out what is owed.
  rm -f "$fw/first"
  ( while ! find "$fleet/outbox-pg" -name '*.eml' -print -quit 2>/dev/null | grep -q .; do sleep 0.05; done
    now_ns > "$fw/first" ) &
  poller=$!
  nt_t0=$(now_ns)
  notify_pg "$bound"
  kill "$poller" 2>/dev/null || true; wait "$poller" 2>/dev/null || true
  if [ -s "$fw/first" ]; then
    nt_first=$(awk -v a="$nt_t0" -v b="$(cat "$fw/first")" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    nt_after="; the first message after ${nt_first}s, the rest at $(awk -v n="$N_SENT" -v s="$N_SECS" -v f="$nt_first" 'BEGIN { d = s - f; if (d <= 0) d = 0.01; printf "%.0f", (n - 1) / d }')/s"
  else
    nt_after="; no message reached the outbox"
  fi
  nt_left=$(pending)
  nt_files=$(emls "$fleet/outbox-pg")
  if [ "$N_RC" = 124 ]; then
    nt_line="**stopped after ${N_SECS}s** (the run's budget) having handed **$N_SENT of $pending1** notices to the outbox ($(rate "$N_SENT" "$N_SECS")/s over the whole run$nt_after, $nt_left still pending)"
  else
    nt_line="**$N_SENT notices handed to the outbox in ${N_SECS}s** ($(rate "$N_SENT" "$N_SECS")/s over the whole run$nt_after)"
  fi
  local pg_rate sq_rate sq_line
  pg_rate=$(rate "$N_SENT" "$N_SECS")
  echo "fleet $idx, notify on SQLite: each server's own, in turn" >&2
  notify_sqlite "${names[@]}"
  sq_rate=$(rate "$Q_SENT" "$Q_SECS")
  sq_line="$Q_SENT notices in ${Q_SECS}s ($sq_rate/s)$([ "$Q_DONE" = "$fleet_servers" ] || echo ", **stopped at the budget** after $Q_DONE of $fleet_servers servers")"
  local nt_rss=$N_RSS

  # Figures.
  stats=$(python3 - "$fw/results.tsv" <<'PY'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
t = {(r[1], r[2]): float(r[3]) for r in rows if r[0] == "1" and r[5] == "done"}
rss = {(r[1], r[2]): int(r[4]) for r in rows if r[0] == "1" and r[5] == "done"}
# In audit order (s01, s02, ... s200).
servers = sorted({s for s, _ in t if (s, "pg") in t and (s, "sqlite") in t}, key=lambda s: int(s[1:]))
print("measured=%d" % len(servers))
if not servers:
    print("pg_med=- pg_min=- pg_max=- sq_med=- sq_min=- sq_max=- r_med=- r_min=- r_max=- rm_med=- pg_rss=0 sq_rss=0 first=- last=- tenths=- groups=''")
    sys.exit()
pg = [t[s, "pg"] for s in servers]; sq = [t[s, "sqlite"] for s in servers]
ratio = [t[s, "pg"] / max(t[s, "sqlite"], 0.01) for s in servers]
f = lambda xs, fmt="%.2f": (fmt % st.median(xs), fmt % min(xs), fmt % max(xs))
print("pg_med=%s pg_min=%s pg_max=%s" % f(pg))
print("sq_med=%s sq_min=%s sq_max=%s" % f(sq))
print("r_med=%s r_min=%s r_max=%s" % f(ratio))
print("rm_med=%.2f" % (st.median(pg) / max(st.median(sq), 0.01)))
print("pg_rss=%d sq_rss=%d" % (max(rss[s, "pg"] for s in servers) // 1024, max(rss[s, "sqlite"] for s in servers) // 1024))
# How the time grows with the fleet already in the database: the servers in tenths, by audit order.
n = len(servers)
parts = [servers[i * n // 10:(i + 1) * n // 10] for i in range(10)]
parts = [p for p in parts if p]
span = lambda p: p[0] if len(p) == 1 else "%s-%s" % (p[0], p[-1])
groups = []
for p in parts:
    groups.append("| %s | %.2f s | %.2f s | %.1fx |" % (span(p), st.median(t[s, "pg"] for s in p),
                  st.median(t[s, "sqlite"] for s in p), st.median(t[s, "pg"] / max(t[s, "sqlite"], 0.01) for s in p)))
first = st.median(t[s, "pg"] for s in parts[0]); last = st.median(t[s, "pg"] for s in parts[-1])
print("first=%s last=%s" % (span(parts[0]), span(parts[-1])))
print("first_med=%.2f last_med=%.2f tenths=%.2f" % (first, last, last / max(first, 0.01)))
print("groups='%s'" % "\n".join(groups))
PY
)
  local measured pg_med pg_min pg_max sq_med sq_min sq_max r_med r_min r_max rm_med pg_rss sq_rss first last first_med="-" last_med="-" tenths groups
  eval "$stats"
  local label="$fleet_servers servers of $fleet_accounts accounts"
  goal "$label: a server's night on PostgreSQL at most 1.5x its night on SQLite (median of the per-server ratios, night 1)" "${r_med}x" "$(le "$r_med" 1.5)"
  goal "$label: the last tenth of the fleet within 1.2x of the first tenth (PostgreSQL medians, $last / $first)" "${tenths}x ($last_med s / $first_med s)" "$(le "$tenths" 1.2)"
  goal "$label: notify on PostgreSQL at least as fast as on SQLite (PostgreSQL: the fleet's one runner; SQLite: every server's own notify over its own notices)" "$pg_rate/s over $N_SENT notices against $sq_rate/s over $Q_SENT" "$(awk -v p="$pg_rate" -v q="$sq_rate" -v n="$Q_SENT" 'BEGIN { print (n > 0 && p + 0 >= q + 0) ? 1 : 0 }')"
  cat > "$work/fleet$idx.md" <<MD
### $fleet_servers servers of $fleet_accounts mailboxes

$fleet_servers generated DirectAdmin servers$scaled (\`scripts/gen-fleet.py\`: $gen_line; ${gen_s}s),
one index built once (${build_s}s, $combo_rows combolist rows).

| night 1: first audit of each server, two at a time | PostgreSQL (shared) | SQLite (own state) | PostgreSQL / SQLite |
|---|---|---|---|
| wall time per server: median | ${pg_med} s | ${sq_med} s | ${r_med}x (median of the per-server ratios; ${rm_med}x the medians') |
| min | ${pg_min} s | ${sq_min} s | ${r_min}x |
| max | ${pg_max} s | ${sq_max} s | ${r_max}x |
| peak RSS, largest | ${pg_rss} MB | ${sq_rss} MB | |

The same by tenths of the fleet, in audit order (a server audited later finds more of the fleet
in the database; SQLite states are each a server's own):

| servers | PostgreSQL median | SQLite median | ratio median |
|---|---|---|---|
$groups

Night 1 took ${night1_s}s for its $(awk -F'\t' '$1 == 1' "$fw/results.tsv" | wc -l) audits$([ "$measured" = "$fleet_servers" ] || echo " (**stopped at the budget**: $measured of $fleet_servers servers audited on both engines; $(stopped_in 1))"). State after it: PostgreSQL $(mb "$pg1") MB
($findings1 findings, $homes1 homes, $marks1 hash marks); SQLite $(mb "$sq1") MB for the $sq_files files
($(mb $((sq1 / (sq_files > 0 ? sq_files : 1)))) MB each).

**Notices.** \`breach-audit notify\` (\`via = "outbox"\`), one runner for the fleet, with $pending1 notices
pending: $nt_line, peak RSS $nt_rss MB; $nt_files .eml files in the outbox. On SQLite, the same
notices: each server's own \`notify\` on its own state, one after the other (the wall times
summed, each process's start included, as each server would run it): $sq_line.
MD
  local f_secs
  f_secs=$(( $(date +%s) - f_t0 ))
  per_mailbox=$(awk -v s="$f_secs" -v m="$((fleet_servers * fleet_accounts))" 'BEGIN { printf "%.9f", s / m }')
  echo "fleet $idx done in ${f_secs}s" >&2
  if [ "$idx" = 1 ] && [ "$do_year" = 1 ]; then
    [ "$CHURN_SERVERS" -le "$fleet_servers" ] || CHURN_SERVERS=$fleet_servers
    deadline=$(( $(date +%s) + year_reserve ))
    year
    tables=$(sql "SELECT string_agg(relname || ' ' || round(pg_total_relation_size(relid) / 1048576.0, 1) || ' MB (' || n_live_tup || ' live rows, ' || n_dead_tup || ' dead)', ', ' ORDER BY pg_total_relation_size(relid) DESC)
      FROM (SELECT * FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC LIMIT 5) t")
    printf '\nLargest PostgreSQL tables after the year (with indexes; rows as the statistics count them): %s.\n' "$tables" >> "$work/year.md"
  fi
  [ "${KEEP:-0}" = 1 ] || rm -rf "$fleet"
}

idx=0
for f in "${fleets[@]}"; do
  idx=$((idx + 1))
  run_fleet "$idx" "${f%%:*}" "${f##*:}"
done
[ "$do_year" = 1 ] || {
  goal "a simulated year: steady state at most 5 MB per 20000-account server per year" "not measured (CHURN_SERVERS=$CHURN_SERVERS NIGHTS=$NIGHTS)" 0
}
summary=""
[ -f "$work/year.md" ] || printf '### No simulated year\n\nNo year ran (CHURN_SERVERS=%s NIGHTS=%s).\n' "$CHURN_SERVERS" "$NIGHTS" > "$work/year.md"
for f in "${fleets[@]}"; do summary+="${summary:+ and }${f%%:*}"; done

{
  cat <<MD
## Fleet: one PostgreSQL state for $summary servers

\`scripts/bench-fleet.sh\` (FLEETS="$FLEETS", $(date -u +%F), breach-audit $commit, $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM,
load average $load_start at the start and $(cut -d' ' -f1-3 /proc/loadavg) at the end (anything else running shows here),
$(( $(date +%s) - started ))s in all (BUDGET=${BUDGET}s),
PostgreSQL $pg_version with its default settings (fsync on, \`shared_buffers\` 128 MB, \`work_mem\` 4 MB) on a
unix socket, the fleet's role logging in with a password from a 0600 file). Each fleet is a fresh
database of generated DirectAdmin servers whose mailboxes are stored as {SSHA256} (verified
offline in microseconds: the run measures the state, not the hashing) over domains of 20
mailboxes, each domain its own owner and contact; one mailbox per domain has its current password
in a combolist, so each domain has a confirmed leak and one notice. One index per fleet, shared by
every server with \`rebuild = false\`. Each pair of servers audits into the shared database, then
the same pair into their own SQLite states (the default), so both engines see the same machine
state.

The goals of issue 41, from this run:

\`\`\`text
$(goals)
\`\`\`

MD
  for i in $(seq 1 "$idx"); do
    cat "$work/fleet$i.md"; echo
    [ "$i" != 1 ] || { cat "$work/year.md"; echo; }
  done
} > BENCHMARKS.fleet.md
echo "wrote BENCHMARKS.fleet.md ($(( $(date +%s) - started ))s)" >&2
goals >&2
cat BENCHMARKS.fleet.md
