#!/bin/sh
# Nightly wrapper for cron: run the audit, stay silent unless something needs a human.
#
#   # /etc/cron.d/breach-audit
#   MAILTO=postmaster@example.net
#   17 3 * * *  root  /usr/local/bin/breach-audit-cron.sh /etc/breach-audit/audit.toml
#
# Exit codes of `breach-audit audit`: 0 nothing new, 1 new findings (the mailer's input is in the
# config's `out` directory), 2 error (printed, so cron mails it), 3 another run holds the lock.
# Set NOTIFY to a command to run when there are new findings, e.g. the notice mailer:
#   NOTIFY="/usr/local/bin/send-breach-notices /var/lib/breach-audit/out/notices.csv"
set -u
config=${1:-/etc/breach-audit/audit.toml}
bin=${BREACH_AUDIT:-breach-audit}
"$bin" audit --config "$config" --quiet
rc=$?
case $rc in
  0) exit 0 ;;
  1) logger -t breach-audit "new at-risk findings; notices written" 2>/dev/null
     if [ -n "${NOTIFY:-}" ]; then sh -c "$NOTIFY"; fi
     exit 0 ;;
  3) logger -t breach-audit "previous audit still running; skipped" 2>/dev/null; exit 0 ;;
  *) echo "breach-audit audit failed (exit $rc); see the message above" >&2; exit "$rc" ;;
esac
