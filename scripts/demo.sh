#!/usr/bin/env bash
# The main job: boot a sample container root filesystem as a microVM and
# show its output. Builds the sample rootfs (busybox) and fetches the guest
# kernel on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=build/ctr-jailer
rootfs=build/demo-rootfs
cache=${CTR_JAILER_CACHE:-/var/cache/ctr-jailer}

if [ ! -x "$rootfs/bin/sh" ]; then
  mkdir -p "$rootfs/bin" "$rootfs/etc"
  cp /bin/busybox "$rootfs/bin/busybox"
  "$rootfs/bin/busybox" --list | while read -r applet; do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
  echo 'root:x:0:' > "$rootfs/etc/group"
  printf 'NAME="ctr-jailer demo (busybox)"\n' > "$rootfs/etc/os-release"
fi

[ -e "$cache/kernels/default" ] || CTR_JAILER_CACHE=$cache "$bin" kernel fetch

# A clean environment, as a container would have: every variable in it
# reaches the guest's process environment and /var/environment
# (--env-passthrough: with --rootfs from a host shell nothing passes unless
# asked; as a container's ENTRYPOINT everything does). No
# network, so the demo changes nothing on this host (networking is on by
# default: see README, Networking).
exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CTR_JAILER_CACHE="$cache" \
  GREETING="hello from the container's environment" "$bin" run --rootfs "$rootfs" --env-passthrough --memory 256 --cpus 1 \
  --network none -- \
  /bin/sh -c '. /etc/os-release; echo "Hello from a microVM: $NAME, kernel $(uname -r), $(nproc) vCPU"
echo "GREETING=$GREETING"; echo "/var/environment:"; cat /var/environment'
