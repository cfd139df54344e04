#!/usr/bin/env bash
# Regenerate sample-data/expected/ from the sample data with the current binary (the inputs are
# those of tests/check.rs, tests/combolist.rs and tests/servers.rs). Review `git diff` after.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin=$PWD/target/debug/breach-audit
s=$PWD/sample-data
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
hibp=(--hibp "$s/hibp/pwned-passwords-sha1.txt" --hibp "$s/hibp/pwned-passwords-ntlm.txt.gz"
      --hibp "$s/hibp/extra-by-prevalence.txt.zst" --hibp "$s/hibp/ranges")
acc=(--accounts-csv "$s/accounts/export.csv" --passwd-file "$s/accounts/dovecot-users")
"$bin" build -q --index "$t/hibp" "${hibp[@]}"
"$bin" check -q --index "$t/hibp" "${acc[@]}" > "$s/expected/check.jsonl" || [ $? -eq 1 ]
"$bin" build -q --index "$t/all" "${hibp[@]}" --combolist "$s/combolists/collection-sample.txt" \
  --combolist "$s/combolists/more.txt.gz" --combolist "$s/combolists/third.txt.zst"
"$bin" check -q --index "$t/all" "${acc[@]}" > "$s/expected/check-with-combolists.jsonl" || [ $? -eq 1 ]
"$bin" build -q --index "$t/srv" --hibp "$s/hibp/pwned-passwords-sha1.txt" \
  --hibp "$s/hibp/pwned-passwords-ntlm.txt.gz" --combolist "$s/combolists/customers.txt"
"$bin" check -q --index "$t/srv" --directadmin "$s/servers/directadmin" --cpanel "$s/servers/cpanel" \
  > "$s/expected/check-servers.jsonl" || [ $? -eq 1 ]
