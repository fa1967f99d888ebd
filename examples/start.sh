#!/bin/sh
# An example workload: it runs inside the microVM, as the image's CMD.
echo "Hello from a microVM: kernel $(uname -r), $(nproc) vCPU"
# The container's environment, also in /var/environment (the seed's contract)
. /var/environment
echo "GREETING=${GREETING:-unset}"
# The data drive (/dev/vdb), mounted at /data by the guest init (DATA_MOUNT)
if grep -q ' /data ' /proc/mounts; then
	n=$(($(cat /data/boots 2>/dev/null || echo 0) + 1))
	echo "$n" > /data/boots
	echo "boot number $n on the data drive"
fi
# docker stop: the guest init delivers SIGTERM here
trap 'echo "stopping"; exit 0' TERM
while :; do sleep 3600 & wait $!; done
