#!/usr/bin/env bash
# The packages' checks (run by scripts/test.sh after the cargo tests; needs lintian, rpm, man-db,
# binutils, which test.sh installs): makes them with scripts/package.sh, then
# - lintian reports no error on the .deb;
# - `dpkg-deb -c` and `rpm -qlvp` list every file the packages promise, with its mode;
# - the .deb unpacks with `dpkg-deb -x`, the .rpm installs with `rpm --root TMP --nodeps -i`, and
#   the binary from each prints the version with the commit and builds an index from sample-data/
#   on which `check` finds the sample's at-risk accounts;
# - the binary needs no glibc symbol above GLIBC_2.28 and loads only glibc's libraries;
# - the post-install script makes /var/lib/breach-audit 0700 and /var/log/breach-audit (run on a
#   copy pointed at a temporary directory);
# - each man page renders with `man -l`, and the bash completion loads (`complete -p`).
# Prints "package: N passed, 0 failed" at the end; exits non-zero at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/package.sh
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
deb=dist/breach-audit_${version}_amd64.deb
rpm=dist/breach-audit-${version}-1.x86_64.rpm
tmp=$(mktemp -d "${TMPDIR:-/tmp}/breach-audit-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0
ok() { passed=$((passed + 1)); echo "package: ok: $*"; }
fail() { echo "package: FAILED: $*" >&2; echo "package: $passed passed, 1 failed"; exit 1; }

(cd dist && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS"
ok "SHA256SUMS"
# lintian's errors (E:) fail; warnings are printed.
lintian --fail-on error --allow-root "$deb" || fail "lintian reports errors on $deb"
ok "lintian: no error"

# Every file, with its mode (man pages: one per subcommand, all present in both).
want="-rwxr-xr-x /usr/bin/breach-audit
-rwxr-xr-x /usr/bin/breach-audit-cron.sh
-rw-r--r-- /usr/lib/systemd/system/breach-audit.service
-rw-r--r-- /usr/lib/systemd/system/breach-audit.timer
-rw-r--r-- /usr/lib/systemd/system/breach-audit-serve.service
-rw-r--r-- /usr/share/breach-audit/dovecot/breach-audit.lua
-rw-r--r-- /usr/share/breach-audit/dovecot/breach-audit.conf
-rw------- /etc/breach-audit/audit.toml
-rw-r--r-- /usr/share/bash-completion/completions/breach-audit
-rw-r--r-- /usr/share/zsh/vendor-completions/_breach-audit
-rw-r--r-- /usr/share/fish/vendor_completions.d/breach-audit.fish"
for page in target/package/man/*.1.gz; do
  want+=$'\n'"-rw-r--r-- /usr/share/man/man1/$(basename "$page")"
done
[ "$(ls target/package/man | wc -l)" -ge 15 ] || fail "fewer man pages than subcommands"
dpkg-deb -c "$deb" | awk '{ p = $6; sub(/^\./, "", p); print $1, p }' >"$tmp/deb.list"
rpm -qlvp "$rpm" | awk '{ print $1, $9 }' >"$tmp/rpm.list"
while read -r mode path; do
  grep -qxF -- "$mode $path" "$tmp/deb.list" || fail "$deb lacks $mode $path"
  grep -qxF -- "$mode $path" "$tmp/rpm.list" || fail "$rpm lacks $mode $path"
done <<<"$want"
grep -q '/usr/share/doc/breach-audit/copyright$' "$tmp/deb.list" || fail "$deb has no copyright"
ok "dpkg-deb -c and rpm -qlvp list $(wc -l <<<"$want") files with their modes"
dpkg-deb -f "$deb" Conffiles 2>/dev/null | grep -q . ||
  dpkg-deb -I "$deb" conffiles | grep -qx /etc/breach-audit/audit.toml || fail "no conffile"
rpm -qp --configfiles "$rpm" | grep -qx /etc/breach-audit/audit.toml || fail "rpm: no config file"
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" | grep -qx 'cn /etc/breach-audit/audit.toml' ||
  fail "rpm: audit.toml is not %config(noreplace)"
ok "audit.toml is a conffile / %config(noreplace)"

# The maintainer scripts: only the two directories, nothing enabled or started.
dpkg-deb -e "$deb" "$tmp/control"
rpm -qp --scripts "$rpm" >"$tmp/rpm.scripts"
for s in "$tmp"/control/{preinst,postinst,prerm,postrm} "$tmp/rpm.scripts"; do
  [ -e "$s" ] || continue
  ! grep -Eq 'systemctl|deb-systemd|invoke-rc.d|update-rc.d' "$s" || fail "$(basename "$s") touches services"
done
sed "s#/var/#$tmp/sys/var/#g" "$tmp/control/postinst" >"$tmp/postinst"
mkdir -p "$tmp/sys/var/lib" "$tmp/sys/var/log"
sh "$tmp/postinst" configure
[ "$(stat -c %a "$tmp/sys/var/lib/breach-audit")" = 700 ] || fail "/var/lib/breach-audit is not 0700"
mode=$(stat -c %a:%G "$tmp/sys/var/log/breach-audit")
if getent group dovecot >/dev/null; then want_log=2770:dovecot; else want_log=700:root; fi
[ "$mode" = "$want_log" ] || fail "/var/log/breach-audit is $mode, not $want_log"
ok "postinst makes /var/lib/breach-audit 0700, /var/log/breach-audit $want_log, nothing else"

dpkg-deb -x "$deb" "$tmp/deb"
rpm --root "$tmp/rpm" --initdb
rpm --root "$tmp/rpm" --nodeps --noscripts -i "$rpm"
ok "dpkg-deb -x and rpm --root -i"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
for root in "$tmp/deb" "$tmp/rpm"; do
  ba=$root/usr/bin/breach-audit
  [ "$("$ba" --version)" = "breach-audit $version ($commit)" ] || fail "$ba --version: $("$ba" --version)"
  "$ba" build --index "$tmp/index" --quiet \
    --hibp sample-data/hibp/pwned-passwords-sha1.txt \
    --hibp sample-data/hibp/pwned-passwords-ntlm.txt.gz \
    --combolist sample-data/combolists/collection-sample.txt 2>"$tmp/build.err" ||
    { cat "$tmp/build.err" >&2; fail "$ba build"; }
  rc=0
  "$ba" check --index "$tmp/index" --accounts-csv sample-data/accounts/export.csv \
    --passwd-file sample-data/accounts/dovecot-users >"$tmp/at-risk.jsonl" 2>/dev/null || rc=$?
  [ $rc -eq 1 ] && [ -s "$tmp/at-risk.jsonl" ] || fail "$ba check exited $rc"
  rm -rf "$tmp/index"
  ok "$(basename "$root")'s binary: --version shows $commit; the sample index finds $(wc -l <"$tmp/at-risk.jsonl") at-risk accounts"
done

ba=$tmp/deb/usr/bin/breach-audit
cmp -s "$ba" "$tmp/rpm/usr/bin/breach-audit" || fail "the two packages hold different binaries"
newest=$(objdump -T "$ba" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
[ "$(printf '%s\nGLIBC_2.28\n' "$newest" | sort -V | tail -1)" = GLIBC_2.28 ] ||
  fail "the binary needs $newest (more than GLIBC_2.28)"
ok "newest glibc symbol version: $newest"
libs=$(ldd "$ba" | awk '{ print $1 }' | grep -v -e '^linux-vdso' -e '^/lib64/ld-linux' | sort | tr '\n' ' ')
# glibc's own libraries only: libdl and libpthread are separate ones in glibc 2.28 (the binary's
# pthread_create and dlsym come from there on EL8; from glibc 2.34 on they are empty stubs). No
# libgcc_s (zig links LLVM's libunwind statically), no OpenSSL, no libz.
[ "$libs" = "libc.so.6 libdl.so.2 libm.so.6 libpthread.so.0 " ] ||
  fail "the binary loads $libs(want libc, libdl, libm and libpthread only)"
ok "ldd: $libs"

for page in "$tmp"/deb/usr/share/man/man1/*.1.gz; do
  out=$(MANWIDTH=80 MANPAGER=cat man -l "$page" 2>"$tmp/man.err") || fail "man -l $page"
  [ ! -s "$tmp/man.err" ] || { cat "$tmp/man.err" >&2; fail "man -l $page warns"; }
  grep -q "breach-audit" <<<"$out" || fail "man -l $page shows no name"
done
ok "$(ls "$tmp"/deb/usr/share/man/man1 | wc -l) man pages render with man -l"
bash -c 'source "$1" && complete -p breach-audit' _ \
  "$tmp/deb/usr/share/bash-completion/completions/breach-audit" >/dev/null ||
  fail "the bash completion does not load"
ok "bash completion loads (complete -p breach-audit)"
echo "package: $passed passed, 0 failed"
