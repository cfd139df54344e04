#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests start for real, then runs every
# test. Tests that deliver notices start Postfix's smtp-sink on a loopback port; suspension tests
# run postmap, Exim's lsearch and a Dovecot of their own (`doveadm auth test`); the account-store
# tests start PostgreSQL, MariaDB and OpenLDAP's slapd in temporary directories; the scheme sweep
# uses mkpasswd (whois); `fetch` downloads from nginx (HTTP/2, TLS with an openssl-made CA, faults
# injected by a python3 proxy, the store read back with the zstd command); the operator's page is rendered by headless Chromium. Debian's packages are installed here non-interactively; their own
# services are not started (postfix with no configuration, slapd unconfigured, and the tests'
# servers listen on unix sockets or a loopback port only). Extra arguments go to `cargo test`;
# scripts/package-test.sh then makes the .deb and .rpm and checks them.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
missing=()
[ -x /usr/sbin/smtp-sink ] || command -v smtp-sink >/dev/null 2>&1 || missing+=(postfix)
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-core)
# The login hook's tests: Dovecot's Lua passdb and LuaSocket.
ls /usr/lib/dovecot/modules/auth/libauthdb_lua.so >/dev/null 2>&1 || missing+=(dovecot-auth-lua)
[ -e /usr/share/lua/5.4/socket.lua ] || missing+=(lua-socket)
command -v mkpasswd >/dev/null 2>&1 || missing+=(whois)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# The PostgreSQL TLS tests make a throwaway CA with the openssl command.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
[ -x /usr/sbin/slapd ] || missing+=(slapd)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# tests/fleet_pooled.rs: the shared state behind a transaction-mode pooler.
[ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
# tests/no_openssl.rs reads the binary's linked libraries with ldd.
command -v ldd >/dev/null 2>&1 || missing+=(libc-bin)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v ldapadd >/dev/null 2>&1 || missing+=(ldap-utils)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The packages' checks (scripts/package-test.sh): lintian, rpm, man -l, objdump; python3-venv for
# the ziglang/cargo-zigbuild venv of scripts/package.sh.
command -v lintian >/dev/null 2>&1 || missing+=(lintian)
command -v rpm >/dev/null 2>&1 || missing+=(rpm)
command -v man >/dev/null 2>&1 || missing+=(man-db)
command -v objdump >/dev/null 2>&1 || missing+=(binutils)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} (for the tests' real mail servers)" >&2
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  echo "slapd slapd/no_configuration boolean true" | $sudo debconf-set-selections
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Exim (for the DirectAdmin suspension file, read by exim's lsearch, and SMTP AUTH through
# Dovecot's auth socket, which only the heavy daemon's `dovecot` authenticator does) conflicts
# with postfix as a package: unpack its binary into target/test-tools/exim-heavy instead, with the
# libraries it lacks, and create the system user the binary insists on.
exim=target/test-tools/exim-heavy
if [ ! -x "$exim/usr/sbin/exim4" ]; then
  echo "test.sh: unpacking exim4-daemon-heavy into $exim (for the suspension and login tests)" >&2
  rm -rf "$exim.tmp" && mkdir -p "$exim.tmp/debs"
  [ -n "$(ls /var/lib/apt/lists 2>/dev/null | grep -v lock)" ] || ${sudo:-} apt-get update -qq
  (cd "$exim.tmp/debs" && apt-get download -qq exim4-daemon-heavy libidn12 libgnutls-dane0 libspf2-2 2>/dev/null)
  for d in "$exim.tmp"/debs/*.deb; do dpkg -x "$d" "$exim.tmp/root"; done
  rm -rf "$exim" && mv "$exim.tmp/root" "$exim" && rm -rf "$exim.tmp"
fi
if ! getent passwd Debian-exim >/dev/null; then
  ${sudo:-} useradd --system --no-create-home --shell /usr/sbin/nologin Debian-exim
fi
cargo test --features server-tests "$@"
# Then the .deb and .rpm (scripts/package.sh), checked as issue 42 asks: the first run installs
# the packaging tools under target/test-tools/ and builds the glibc 2.28 release binary.
bash scripts/package-test.sh
