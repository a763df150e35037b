#!/usr/bin/env bash
# Builds the magnum image from scratch: no base image to pull. It holds the `magnum` binary, the
# shared libraries it links (as `ldd` lists them), a CA bundle, and a non-root user (magnum,
# uid 10001) owning /var/lib/magnum. One image runs every role (`api`, `conductor`,
# `cloud-sim`, `manage`).
#
# usage: deploy/build-image.sh [--debug] [TAG]
#   --debug  the debug build (the one the tests build anyway) instead of a release build
#   TAG      default magnum-rs:<crate version>-<git short hash>; also tagged magnum-rs:latest
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
profile=release
if [ "${1:-}" = --debug ]; then profile=debug; shift; fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=${1:-magnum-rs:$version-$(git rev-parse --short HEAD 2>/dev/null || echo local)}

if [ "$profile" = release ]; then
  cargo build --release -q -p magnum-deploy --bin magnum
else
  cargo build -q -p magnum-deploy --bin magnum
fi
bin=target/$profile/magnum

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
fs=$ctx/rootfs
mkdir -p "$fs/usr/bin" "$fs/etc/ssl/certs" "$fs/etc/magnum" "$fs/tmp" "$ctx/home/pki" "$ctx/home/data"
chmod 1777 "$fs/tmp"
cp "$bin" "$fs/usr/bin/magnum"
# Symbols stay (backtraces name functions); the debug info (most of the file) goes.
strip --strip-debug "$fs/usr/bin/magnum"
# The loader and every library, at the paths the binary asks for them.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$fs$(dirname "$lib")"
  cp -L "$lib" "$fs$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$fs/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nmagnum:x:10001:10001:magnum:/var/lib/magnum:/sbin/nologin\n' >"$fs/etc/passwd"
printf 'root:x:0:\nmagnum:x:10001:\n' >"$fs/etc/group"

cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
COPY --chown=10001:10001 home/ /var/lib/magnum/
LABEL org.opencontainers.image.title="magnum-rs" org.opencontainers.image.version="$version"
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001
WORKDIR /var/lib/magnum
ENTRYPOINT ["/usr/bin/magnum"]
EOF
docker build -q -t "$tag" -t magnum-rs:latest "$ctx" >/dev/null
echo "$tag"
