/* SPDX-License-Identifier: Apache-2.0 */
/* The guest's network identity: hostname, lo, eth0 (address, netmask, MTU,
 * default route), /etc/resolv.conf and /etc/hosts. Uses the ioctl
 * interface: the kernel's ioctls need no message encoder, and this static
 * init has no netlink library to link against. */
#include "init.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* The loopback interface; eth0 belongs to the networking setup. */
void net_loopback_up(void)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			guest_say("bring up lo: %s", strerror(errno));
	}
	close(fd);
}

static void write_text_file(const char *path, const char *text)
{
	int fd;
	size_t len = strlen(text);

	unlink(path); /* a symlink in the image (e.g. to a resolver stub) is replaced */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		guest_say("write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void eth0_address(int fd, const struct ctrj_net *n)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "eth0");
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = n->addr;
	if (ioctl(fd, SIOCSIFADDR, &ifr) < 0)
		guest_fail(0, "eth0 address: %s (is virtio_net available?)", strerror(errno));
	sin->sin_addr.s_addr = htonl(n->prefix >= 32 ? ~0u : ~(~0u >> n->prefix));
	if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0)
		guest_fail(0, "eth0 netmask: %s", strerror(errno));
	ifr.ifr_mtu = (int)n->mtu;
	if (ioctl(fd, SIOCSIFMTU, &ifr) < 0)
		guest_fail(0, "eth0 mtu: %s", strerror(errno));
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		guest_fail(0, "eth0 flags: %s", strerror(errno));
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		guest_fail(0, "eth0 up: %s", strerror(errno));
}

static void default_route(int fd, const struct ctrj_net *n)
{
	struct rtentry rt;
	struct sockaddr_in *sin = (struct sockaddr_in *)&rt.rt_gateway;

	memset(&rt, 0, sizeof rt);
	((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
	((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = n->gateway;
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	rt.rt_dev = "eth0";
	if (ioctl(fd, SIOCADDRT, &rt) < 0)
		guest_fail(0, "default route: %s", strerror(errno));
}

static void write_resolver_files(const struct ctrj_config *cfg)
{
	const struct ctrj_net *n = &cfg->net;
	char text[1024] = "", addr[INET_ADDRSTRLEN];
	int len = 0;

	guest_mkdir_p("/etc", 0755);
	for (uint32_t i = 0; i < n->ndns; i++) {
		inet_ntop(AF_INET, &n->dns[i], addr, sizeof addr);
		len += snprintf(text + len, sizeof text - (size_t)len, "nameserver %s\n", addr);
	}
	write_text_file("/etc/resolv.conf", text);
	inet_ntop(AF_INET, &n->addr, addr, sizeof addr);
	snprintf(text, sizeof text,
	         "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", addr,
	         cfg->hostname ? cfg->hostname : "localhost");
	write_text_file("/etc/hosts", text);
}

void net_setup(const struct ctrj_config *cfg)
{
	int fd;

	if (cfg->hostname && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
		guest_say("sethostname: %s", strerror(errno));
	net_loopback_up(); /* up already in a restored VM */
	if (!cfg->has_net)
		return;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		guest_fail(0, "socket: %s", strerror(errno));
	eth0_address(fd, &cfg->net);
	if (cfg->net.gateway) /* an engine's network may have none */
		default_route(fd, &cfg->net);
	close(fd);
	write_resolver_files(cfg);
}
