#!/usr/bin/env bash
# The login path, side by side in one run (README "Checking at login"): Dovecot logins over its
# auth-client socket (what Postfix and Exim send for SMTP AUTH) without the breach-audit hook and
# with it (the shipped contrib/dovecot files, serve under `observe`), one client and 8 at once; then
# serve's own answers over its socket, and its peak RSS under a storm. Writes BENCHMARKS.login.md.
#
#   scripts/bench-login.sh            # USERS=200 SECS=5 by default
#
# Needs dovecot-core, dovecot-auth-lua and lua-socket (scripts/test.sh installs them). Passwords
# are stored twice: as SHA512-CRYPT (DirectAdmin's and most stacks' default, 5000 rounds) and as
# {SSHA512} (a cheap salted scheme: the worst case, where the hook's own cost shows most); the
# auth cache is off so every login reaches the hook.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-200}
SECS=${SECS:-5}
BIN=${BIN:-target/release/breach-audit}
[ -x "$BIN" ] || cargo build --release -q
BIN=$(realpath "$BIN")
W=$(mktemp -d /tmp/ba-login-bench.XXXXXX)
chmod 755 "$W"
SERVE=
cleanup() {
  [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null || true
  for d in "$W"/*/; do [ -f "$d/dovecot.conf" ] && doveadm -c "$d/dovecot.conf" stop 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

# Accounts: every fourth password in the dumps (qwerty), every tenth leaked for its own address.
: > "$W/users.tsv"; : > "$W/passwd.SHA512-CRYPT"; : > "$W/passwd.SSHA512"; : > "$W/combo.txt"
for i in $(seq 1 "$USERS"); do
  u="user$i@bench.example"
  if [ $((i % 4)) -eq 0 ]; then p=qwerty; else p="pw-$i-$RANDOM$RANDOM"; fi
  [ $((i % 10)) -eq 0 ] && printf '%s:%s\n' "$u" "$p" >> "$W/combo.txt"
  printf '%s\t%s\n' "$u" "$p" >> "$W/users.tsv"
  for s in SHA512-CRYPT SSHA512; do
    printf '%s:%s::::::\n' "$u" "$(doveadm pw -s "$s" -p "$p")" >> "$W/passwd.$s"
  done
done
chmod 644 "$W"/passwd.*
mkdir -p "$W/state" && chmod 700 "$W/state"
"$BIN" build -q --index "$W/idx" --hibp sample-data/hibp/pwned-passwords-sha1.txt --combolist "$W/combo.txt"

start_dovecot() { # NAME HOOK(0|1) SCHEME
  local d="$W/$1"
  mkdir -p "$d"
  local hook=""
  if [ "$2" = 1 ]; then
    sed -e "s|/run/breach-audit/serve.sock|$W/serve.sock|; s|/var/log/breach-audit/hook-failures|$W/failures|; s|/etc/dovecot/breach-audit.lua|$PWD/contrib/dovecot/breach-audit.lua|" \
      contrib/dovecot/breach-audit.conf > "$d/hook.conf"
    hook="!include $d/hook.conf"
  fi
  cat > "$d/dovecot.conf" <<CONF
base_dir = $d/run
state_dir = $d/state
log_path = $d/log
instance_name = ba-bench-$1-$$
protocols =
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain
disable_plaintext_auth = no
auth_cache_size = 0
passdb {
  driver = passwd-file
  args = $W/passwd.$3
  result_success = continue-ok
}
$hook
userdb {
  driver = static
  args = uid=1000 gid=1000 home=$d/home
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
CONF
  /usr/sbin/dovecot -c "$d/dovecot.conf"
  for _ in $(seq 100); do [ -S "$d/run/auth-client" ] && return; sleep 0.05; done
  echo "bench-login: dovecot $1 did not start: $(cat "$d/log")" >&2; exit 1
}

"$BIN" serve -q --index "$W/idx" --state "$W/state" --socket "$W/serve.sock" --policy observe &
SERVE=$!
for _ in $(seq 100); do [ -S "$W/serve.sock" ] && break; sleep 0.05; done
load() { python3 scripts/login-load.py "$@"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a - b }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", 100 * a / b }'; }
yn() { if [ "$1" = 1 ]; then echo "**met**"; else echo "not met"; fi; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 < b + 0) ? 1 : 0 }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 >= b + 0) ? 1 : 0 }'; }
rows=""
for scheme in SHA512-CRYPT SSHA512; do
  start_dovecot "plain-$scheme" 0 "$scheme"
  start_dovecot "hooked-$scheme" 1 "$scheme"
  P="$W/plain-$scheme/run/auth-client"; H="$W/hooked-$scheme/run/auth-client"
  # Warm both (Lua loaded, auth workers started).
  load auth "$P" smtp "$W/users.tsv" 2 1 >/dev/null
  load auth "$H" smtp "$W/users.tsv" 2 1 >/dev/null
  p1=$(load auth "$P" smtp "$W/users.tsv" 1 "$SECS")
  h1=$(load auth "$H" smtp "$W/users.tsv" 1 "$SECS")
  p8=$(load auth "$P" smtp "$W/users.tsv" 8 "$SECS")
  h8=$(load auth "$H" smtp "$W/users.tsv" 8 "$SECS")
  for r in "$p1" "$h1" "$p8" "$h8"; do
    [ "$(field "$r" failures)" = 0 ] || { echo "bench-login: failed logins: $r" >&2; exit 1; }
  done
  add_p50=$(added "$(field "$h1" p50_us)" "$(field "$p1" p50_us)")
  add_p99=$(added "$(field "$h1" p99_us)" "$(field "$p1" p99_us)")
  share=$(pct "$(field "$h8" per_s)" "$(field "$p8" per_s)")
  rows+="| $scheme | 1 client: p50 | $(field "$p1" p50_us) µs | $(field "$h1" p50_us) µs (+$add_p50 µs) | |
| $scheme | 1 client: p99 | $(field "$p1" p99_us) µs | $(field "$h1" p99_us) µs (+$add_p99 µs) | added p99 < 1000 µs: $(yn "$(lt "$add_p99" 1000)") |
| $scheme | 1 client: logins/s | $(field "$p1" per_s) | $(field "$h1" per_s) | |
| $scheme | 8 clients: logins/s | $(field "$p8" per_s) | $(field "$h8" per_s) ($share%) | >= 90%: $(yn "$(ge "$share" 90)") |
| $scheme | 8 clients: p99 | $(field "$p8" p99_us) µs | $(field "$h8" p99_us) µs | |
"
done
s1=$(load serve "$W/serve.sock" "$W/users.tsv" 1 "$SECS")
s8=$(load serve "$W/serve.sock" "$W/users.tsv" 8 "$SECS")
storm=$(load serve "$W/serve.sock" "$W/users.tsv" 32 "$SECS")
rss=$(awk '/VmHWM/ { print $2 }' "/proc/$SERVE/status")
for r in "$s1" "$s8" "$storm"; do
  [ "$(field "$r" failures)" = 0 ] || { echo "bench-login: failed requests: $r" >&2; exit 1; }
done
fails=0
[ -f "$W/failures" ] && fails=$(wc -l < "$W/failures")
cat > BENCHMARKS.login.md <<MD
## Logins (checking at login)

\`scripts/bench-login.sh\` ($(date -u +%F), $(nproc) cores, $USERS accounts stored as
SHA512-CRYPT and as {SSHA512}, SMTP logins over Dovecot $(dovecot --version | cut -d' ' -f1)'s auth-client socket by
\`scripts/login-load.py\` for ${SECS}s each, auth cache off; "hook" is the shipped
\`contrib/dovecot/breach-audit.lua\` and snippet asking \`breach-audit serve\` (policy observe)
after the passwd-file verified the password; the same run, side by side):

| stored as | logins | without the hook | with the hook | goal |
|---|---|---|---|---|
$rows

\`breach-audit serve\` alone, one connection per request as the hook makes them (Python clients:
their own cost is in these numbers):

| | requests/s | p50 | p99 |
|---|---|---|---|
| 1 client | $(field "$s1" per_s) | $(field "$s1" p50_us) µs | $(field "$s1" p99_us) µs |
| 8 clients | $(field "$s8" per_s) | $(field "$s8" p50_us) µs | $(field "$s8" p99_us) µs |
| 32 clients (storm) | $(field "$storm" per_s) | $(field "$storm" p50_us) µs | $(field "$storm" p99_us) µs |

Peak RSS of \`serve\` after the storm: $((rss / 1024)) MB (8 workers, a queue of 256 connections,
verdicts of at most 100,000 accounts in memory). Hook failures during the run: $fails.
MD
echo "wrote BENCHMARKS.login.md" >&2
cat BENCHMARKS.login.md
