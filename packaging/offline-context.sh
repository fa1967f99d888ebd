#!/usr/bin/env bash
# Fill CONTEXT/packaging/offline/ for an offline build of the runtime image
# (`docker build -f packaging/Dockerfile --build-arg OFFLINE=1 CONTEXT`):
# the ctr-jailer binary, the default guest kernel from a ctr-jailer cache,
# and, when FIRECRACKER_BIN and JAILER_BIN name them, Firecracker and its
# jailer (for --build-arg FIRECRACKER=context).
#
#   packaging/offline-context.sh [CONTEXT]      # default CONTEXT: the repository root
#
# CTRJ_BINARY (default build/ctr-jailer) and CTR_JAILER_CACHE (default
# /var/cache/ctr-jailer) say where to take them from. The binary must be
# built on Debian bookworm (the image's libraries are bookworm's).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ctx=${1:-$repo}
bin=${CTRJ_BINARY:-$repo/build/ctr-jailer}
cache=${CTR_JAILER_CACHE:-/var/cache/ctr-jailer}
out=$ctx/packaging/offline

[ -x "$bin" ] || { echo "offline-context: $bin is missing: build first (make build)" >&2; exit 1; }
release=$(readlink "$cache/kernels/default") || {
  echo "offline-context: no kernel in $cache/kernels: run 'ctr-jailer kernel fetch'" >&2; exit 1; }

mkdir -p "$out/cache/kernels"
# a context other than the repository also needs the entrypoint script
[ "$(cd "$ctx" && pwd)" = "$repo" ] || install -m 0755 "$repo/packaging/entrypoint.sh" "$ctx/packaging/entrypoint.sh"
install -m 0755 "$bin" "$out/ctr-jailer"
rm -rf "$out/cache/kernels/$release"
# hard links where the cache is on the same filesystem: the kernel and its
# modules are ~100 MB, and docker only reads them
cp -al "$cache/kernels/$release" "$out/cache/kernels/" 2>/dev/null ||
  cp -a "$cache/kernels/$release" "$out/cache/kernels/"
ln -sfn "$release" "$out/cache/kernels/default"
if [ -n "${FIRECRACKER_BIN:-}" ]; then
  install -m 0755 "$FIRECRACKER_BIN" "$out/firecracker"
  install -m 0755 "${JAILER_BIN:-$(dirname "$FIRECRACKER_BIN")/jailer}" "$out/jailer"
fi
echo "offline-context: $out ready (kernel $release)"
