#!/bin/sh
# Nightly wrapper for cron: run the audit, stay silent unless something needs a human.
#
#   # /etc/cron.d/breach-audit
#   PATH=/usr/local/bin:/usr/bin:/bin
#   MAILTO=postmaster@example.net
#   17 3 * * *  root  /usr/local/bin/breach-audit-cron.sh /etc/breach-audit/audit.toml
#
# Exit codes of `breach-audit audit`: 0 nothing new, 1 new findings (the mailer's input is in the
# config's `out` directory), 2 error (printed, so cron mails it), 3 another run holds the lock.
# With --quiet the audit prints only what a human must see: errors, and accounts it could not
# audit (a missing or refused file, a domain with no owner) or notices it could not deliver (they
# are retried). This wrapper prints those, and exits non-zero when there were any (4: the audit ran
# but was incomplete), so cron mails them.
# With a [fetch] section the audit first fetches the HIBP ranges when due (every `every`, and the
# night after a failed attempt); a full first fetch can take an hour, inside this one run (the
# audit's lock in the state directory is held throughout: a second run meanwhile exits 3, and
# is skipped quietly below). A fetch that failed does not stop the audit, which runs on the index
# it has: this wrapper then exits 6 (after the NOTIFY command, if there were new findings).
# Set NOTIFY to a command to run when there are new findings, e.g. the notice mailer:
#   NOTIFY="/usr/local/bin/send-breach-notices /var/lib/breach-audit/out/notices.csv"
set -u
config=${1:-/etc/breach-audit/audit.toml}
bin=${BREACH_AUDIT:-breach-audit}
messages=$(mktemp "${TMPDIR:-/tmp}/breach-audit-cron.XXXXXX") || exit 2
trap 'rm -f "$messages"' EXIT
# With a [notify] section in the config, pending notices are delivered after the audit; with a
# [suspend] section (the operator's policy), suspensions are applied where each account lives
# and released once no longer wanted. Arguments after the config go to `breach-audit audit`.
[ $# -gt 0 ] && shift
notify=
grep -q '^\[notify\]' "$config" 2>/dev/null && notify=--notify
suspend=
grep -q '^\[suspend\]' "$config" 2>/dev/null && suspend=--suspend
"$bin" audit --config "$config" --quiet $notify $suspend "$@" 2>"$messages"
rc=$?
# Another run still holding the lock is not news: say it to syslog only.
[ $rc -ne 3 ] && cat "$messages" >&2
case $rc in
  0) ;;
  1) logger -t breach-audit "new at-risk findings; notices written" 2>/dev/null
     if [ -n "${NOTIFY:-}" ]; then
       sh -c "$NOTIFY" || { echo "breach-audit: the notice command failed (exit $?): $NOTIFY" >&2; exit 5; }
     fi ;;
  3) logger -t breach-audit "previous audit still running; skipped" 2>/dev/null; exit 0 ;;
  *) echo "breach-audit audit failed (exit $rc); see the message above" >&2; exit "$rc" ;;
esac
if grep -q '^breach-audit: warning: fetch failed:' "$messages"; then
  echo "breach-audit: the fetch of the HIBP data failed (see above); the audit ran on the index it had, and the next run fetches again" >&2
  exit 6
fi
if [ -s "$messages" ]; then
  echo "breach-audit: the audit was incomplete or needs attention (see the warnings above): what was not audited, delivered or judged at a login tonight is kept and owed tomorrow" >&2
  exit 4
fi
exit 0
