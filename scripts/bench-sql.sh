#!/usr/bin/env bash
# Reading mailboxes straight from a mail stack's database: `check --sql` against a real
# PostgreSQL holding ROWS mailboxes (Postfixadmin's schema, bare $6$-free {PLAIN} passwords so the
# run measures reading and judging, not hashing), side by side with the baseline of exporting the
# same rows by hand (`psql COPY ... TO STDOUT` into a CSV) and checking that CSV. Writes the
# "Account stores" section of BENCHMARKS.md (replacing an older one). Called by scripts/bench.sh;
# runs alone too. Needs Debian's postgresql (scripts/test.sh installs it).
#
#   scripts/bench-sql.sh [ROWS=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
work=$(realpath -m "${BENCH_DIR:-bench-work}/sql")
rm -rf "$work"; mkdir -p "$work/pg/sock" "$work/pg/data"
chmod 755 "$work" "$(dirname "$work")"
cargo build --release --quiet
ba=$PWD/target/release/breach-audit
bin=$(ls -d /usr/lib/postgresql/*/bin | head -1)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$work/pg"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$bin/initdb" -D "$work/pg/data" -U owner --auth=trust --no-sync >/dev/null
"${as_pg[@]}" "$bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -o "-h '' -k $work/pg/sock -F" -w start >/dev/null
trap '"${as_pg[@]}" "$bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true' EXIT
psql() { "$bin/psql" -X -q -h "$work/pg/sock" -U owner "$@"; }
psql -d postgres -c "CREATE DATABASE vmail"
psql -d vmail -c "CREATE TABLE domain (domain varchar(255) PRIMARY KEY, active boolean NOT NULL DEFAULT true);
  CREATE TABLE domain_admins (username varchar(255) NOT NULL, domain varchar(255) NOT NULL, active boolean NOT NULL DEFAULT true);
  CREATE TABLE mailbox (username varchar(255) PRIMARY KEY, password varchar(255) NOT NULL, local_part varchar(255) NOT NULL,
    domain varchar(255) REFERENCES domain (domain), active boolean NOT NULL DEFAULT true, smtp_active boolean NOT NULL DEFAULT true);
  INSERT INTO domain SELECT 'customer' || i || '.example' FROM generate_series(0, 4999) i;
  INSERT INTO domain_admins SELECT 'admin@customer' || i || '.example', 'customer' || i || '.example' FROM generate_series(0, 4999) i;
  INSERT INTO mailbox SELECT 'user' || i || '@customer' || (i % 5000) || '.example', '{PLAIN}pw-' || md5(i::text),
    'user' || i, 'customer' || (i % 5000) || '.example' FROM generate_series(1, $N) i;"
echo "user77@customer77.example:pw-$(printf 77 | md5sum | cut -c1-32)" > "$work/combo.txt"
"$ba" build --quiet --index "$work/idx" --combolist "$work/combo.txt"
url="postgres://owner@$(printf %s "$work/pg/sock" | sed 's|/|%2F|g')/vmail"
timed() { # label, command...: seconds and peak RSS (MB)
  local t0 t1; t0=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$work/rss" "${@:2}" > /dev/null || [ $? -eq 1 ]
  t1=$(date +%s%N)
  printf '%s %s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')" \
    "$(tail -1 "$work/rss" | awk '{ printf "%.0f", $1 / 1024 }')"
}
read -r s_sql m_sql < <(timed sql "$ba" check --quiet --index "$work/idx" --sql "$url" --sql-preset postfixadmin)
q="COPY (SELECT username AS email, password AS hash FROM mailbox) TO STDOUT WITH (FORMAT csv, HEADER)"
t0=$(date +%s%N); psql -d vmail -c "$q" > "$work/export.csv"; t1=$(date +%s%N)
s_export=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
read -r s_csv m_csv < <(timed csv "$ba" check --quiet --index "$work/idx" --accounts-csv "$work/export.csv")
rate=$(awk -v n="$N" -v s="$s_sql" 'BEGIN { printf "%.0f", n / s }')
section="## Account stores

\`check --sql postgres://... --sql-preset postfixadmin\` on a real PostgreSQL ($($bin/postgres --version | awk '{print $3}'), unix
socket) holding $N mailboxes of 5000 domains (Postfixadmin's tables, owner from
\`domain_admins\`): **${s_sql}s, $rate rows/s, peak RSS $m_sql MB** (rows stream in batches; memory
does not grow with the table). Baseline, the hand export this replaces: \`psql COPY ... TO
STDOUT\` into a CSV took ${s_export}s, and checking that CSV ${s_csv}s (peak RSS $m_csv MB), together
$(awk -v a="$s_export" -v b="$s_csv" 'BEGIN { printf "%.2f", a + b }')s. (\`scripts/bench-sql.sh $N\`.)"
python3 - "$section" <<'PY'
import sys, re
p = "BENCHMARKS.md"
s = open(p).read()
s = re.sub(r"\n## Account stores\n.*?(?=\n## |\Z)", "", s, flags=re.S)
open(p, "w").write(s.rstrip("\n") + "\n\n" + sys.argv[1] + "\n")
PY
echo "$section" >&2
[ "${KEEP:-0}" = 1 ] || rm -rf "$work"
