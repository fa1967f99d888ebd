/* SPDX-License-Identifier: Apache-2.0 */
/* The AF_VSOCK ABI the agent needs (linux/vm_sockets.h), spelled out:
 * the static init is built against musl, which ships no kernel headers. */
#ifndef CTRJ_GUEST_VSOCK_H
#define CTRJ_GUEST_VSOCK_H

#include <sys/ioctl.h>
#include <sys/socket.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define CTRJ_VMADDR_CID_ANY  0xffffffffu
#define CTRJ_VMADDR_CID_HOST 2u
/* IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock: the guest's CID, or
 * VMADDR_CID_ANY without a guest-to-host transport device */
#define CTRJ_VM_SOCKETS_GET_LOCAL_CID _IO(7, 0xb9)

struct ctrj_sockaddr_vm {
	sa_family_t svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[sizeof(struct sockaddr) - sizeof(sa_family_t) -
	                       sizeof(unsigned short) - 2 * sizeof(unsigned int) - 1];
};

#endif
