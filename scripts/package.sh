#!/usr/bin/env bash
# Builds the release packages into dist/: breach-audit_VERSION_amd64.deb (cargo-deb),
# breach-audit-VERSION-1.x86_64.rpm (cargo-generate-rpm) and SHA256SUMS. The binary is built with
# `cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.28`: linked against glibc 2.28's
# symbols (EL8, the oldest glibc the panels run on), so it starts on every distribution from
# there on; no rustup target is downloaded (the host's x86_64-unknown-linux-gnu std is used).
# The tools it needs are installed under target/test-tools/ when missing (nothing system-wide):
# ziglang and cargo-zigbuild from PyPI into a venv, cargo-deb and cargo-generate-rpm from
# crates.io with `cargo install --locked`. Checked by scripts/package-test.sh (run by test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$PWD/target/test-tools
venv=$tools/zig-venv
if [ ! -x "$venv/bin/cargo-zigbuild" ]; then
  echo "package.sh: installing ziglang and cargo-zigbuild into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ziglang cargo-zigbuild
fi
if [ ! -x "$tools/cargo/bin/cargo-deb" ] || [ ! -x "$tools/cargo/bin/cargo-generate-rpm" ]; then
  echo "package.sh: installing cargo-deb and cargo-generate-rpm into $tools/cargo" >&2
  cargo install --locked --quiet --root "$tools/cargo" cargo-deb cargo-generate-rpm
fi
export PATH=$venv/bin:$tools/cargo/bin:$PATH

triple=x86_64-unknown-linux-gnu
echo "package.sh: cargo zigbuild --release --target $triple.2.28" >&2
cargo zigbuild --release --quiet --target "$triple.2.28"
bin=target/$triple/release/breach-audit
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)

# What the packages install besides the binary, in target/package/: the man pages (gzipped) and
# completions from the binary itself, and the units and Dovecot snippet with the packaged paths
# (/usr/bin for /usr/local/bin; the Lua script where the package puts it).
stage=target/package
rm -rf "$stage" && mkdir -p "$stage/systemd" "$stage/dovecot"
"$bin" generate-assets "$stage"
gzip -9n "$stage"/man/*.1
for unit in scripts/systemd/*; do
  sed -e 's#/usr/local/bin/#/usr/bin/#g' -e 's#/usr/local/bin:##g' \
    -e 's#/etc/systemd/system/\(breach-audit[a-z-]*\.[a-z]*\)#/usr/lib/systemd/system/\1#' \
    "$unit" >"$stage/systemd/$(basename "$unit")"
done
sed 's#file=/etc/dovecot/breach-audit.lua#file=/usr/share/breach-audit/dovecot/breach-audit.lua#' \
  contrib/dovecot/breach-audit.conf >"$stage/dovecot/breach-audit.conf"

rm -rf dist && mkdir -p dist
# --no-strip: the release binary has no debug info; both packages hold the same file.
cargo deb --no-build --no-strip --quiet --target "$triple" -o "dist/breach-audit_${version}_amd64.deb" >/dev/null
# gzip, not the default zstd payload: every rpm reads it, EL8's oldest too.
cargo generate-rpm --target "$triple" --payload-compress gzip -o "dist/breach-audit-${version}-1.x86_64.rpm"
(cd dist && sha256sum -- *.deb *.rpm >SHA256SUMS)
ls -l dist >&2
