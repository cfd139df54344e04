#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests start for real, then runs every
# test. Tests that deliver notices start Postfix's smtp-sink (Debian package `postfix`, installed
# here non-interactively, with no mail configuration: nothing is started or listening) on a
# loopback port. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ -x /usr/sbin/smtp-sink ] || command -v smtp-sink >/dev/null 2>&1 || missing+=(postfix)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "test.sh: installing ${missing[*]} (for the tests' real SMTP server)" >&2
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo test "$@"
