#!/bin/sh
# ENTRYPOINT of the ctr-jailer runtime image: `ctr-jailer run -- CMD...`,
# so the image's CMD is the command run inside the microVM.
#
# A container that is not privileged has /proc/sys and its cgroups mounted
# read-only, and ctr-jailer writes to both: it switches IPv4 forwarding on
# for the guest's NAT, and it nests a cgroup per VM (memory, pids and CPU
# limits) under the container's own. With CAP_SYS_ADMIN, which the jail
# around the VMM needs anyway, this makes exactly those writable, inside
# the container's own mount namespace, before handing over to ctr-jailer:
#  - /proc/sys/net/ipv4/ip_forward alone (a read-write bind mount of that
#    one file; the rest of /proc/sys stays read-only);
#  - the container's own memory, pids and cpu cgroup directories (cgroup v1:
#    docker mounts the container's cgroup there, not the host's tree);
#    devices, freezer and the others stay read-only.
# Nothing is done where they are writable already (privileged containers,
# hosts), and a failure is left to ctr-jailer to report in its own words.
# cgroup v2 is left as it is.
make_writable() {
	if [ -e "$1" ] && ! [ -w "$1" ]; then
		{ [ -d "$1" ] || mount --bind "$1" "$1"; } &&
			mount -o remount,bind,rw "$1" 2>/dev/null
	fi
}

make_writable /proc/sys/net/ipv4/ip_forward 2>/dev/null
if ! [ -e /sys/fs/cgroup/cgroup.controllers ]; then
	for controller in memory pids cpu; do
		make_writable "$(readlink -f "/sys/fs/cgroup/$controller")" 2>/dev/null
	done
fi
exec ctr-jailer run -- "$@"
