#!/usr/bin/env bash
# Install what ctr-jailer needs to build, run and test on Debian 12.
# Idempotent: does nothing when everything is already installed.
set -euo pipefail

packages=(
  # build
  meson ninja-build gcc pkg-config musl-tools
  libjson-c-dev libarchive-dev nettle-dev libmnl-dev libnftables-dev libcurl4-openssl-dev
  # run: VMM, filesystem images, kernel module index, kernel download
  qemu-system-x86 e2fsprogs kmod apt ca-certificates nftables iptables
  # host directories (-v /dir:/path): QEMU's virtiofsd, /usr/lib/qemu/virtiofsd
  qemu-system-common
  # tests
  libcmocka-dev python3 python3-pytest python3-pytest-xdist busybox-static clang-format
  iproute2 procps dnsmasq-base curl
  # gc race test: strace delays the runtime's flock() (syscall injection)
  strace
  # image tests: OCI images built offline (umoci), converted (skopeo),
  # a file capability (setcap), a zstd rootfs tarball
  umoci skopeo libcap2-bin zstd
  # registry tests: a real registry (plain HTTP, TLS, htpasswd auth) in a test
  # namespace, its password file, and a test CA
  docker-registry apache2-utils openssl
  # Firecracker contract tests: its OpenAPI schema, read and applied
  python3-yaml python3-jsonschema
  # Docker end-to-end test: its own dockerd in a test namespace, Compose,
  # and a Debian base image made without a registry
  docker.io docker-compose mmdebstrap
  # runtime mode under containerd without Docker (ctr run --runc-binary)
  containerd
  # Podman runtime-mode test: podman, its conmon and netavark networking
  # (aardvark-dns for named networks' DNS)
  podman conmon netavark aardvark-dns
)

# The jail's unprivileged user (ctr-jailer falls back to nobody without it).
if ! getent passwd ctr-jailer >/dev/null && [ "$(id -u)" -eq 0 ]; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ctr-jailer
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root (or with sudo)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Installing docker.io would start the system's Docker daemon, which changes
# the host's network (a docker0 bridge, iptables rules). The tests run their
# own dockerd in a namespace: keep services from starting during the install
# (the standard policy-rc.d switch), unless the machine has its own policy.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
