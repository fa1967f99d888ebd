/* SPDX-License-Identifier: Apache-2.0 */
/* Hostile-guest IPv6 workload for the network tests, static so it runs in
 * any rootfs. Every command works on eth0:
 *   net6probe wait-ll          wait for eth0's link-local address to leave
 *                              DAD; print "self ADDR"
 *   net6probe ping-all         ICMPv6 echo to ff02::1%eth0 for 3 s; print
 *                              "reply ADDR" for each source other than self
 *   net6probe tcp-gw PORT      connect to the link-local address the host's
 *                              side of the link has (EUI-64 of the IPv4
 *                              gateway's MAC, from the ARP table); print
 *                              "tcp6 ADDR REPLY" or "tcp6 ADDR unreachable"
 *   net6probe ra               send Router Advertisements (default router,
 *                              prefix 2001:db8:cafe::/64 for SLAAC) to
 *                              ff02::1%eth0; print "ra-sent N"
 *   net6probe serve-tcp6 PORT TEXT   (host side) reply TEXT on [::]:PORT */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IFACE "eth0"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* eth0's link-local address once DAD is over (flag 0x40 = tentative). */
static int self_ll(struct in6_addr *out, double timeout)
{
	double end = now() + timeout;

	while (now() < end) {
		FILE *f = fopen("/proc/net/if_inet6", "r");
		char hex[33], dev[IFNAMSIZ + 1];
		unsigned idx, plen, scope, flags;
		while (f && fscanf(f, "%32s %x %x %x %x %16s", hex, &idx, &plen, &scope, &flags,
		                   dev) == 6) {
			if (strcmp(dev, IFACE) != 0 || scope != 0x20 || (flags & 0x40))
				continue;
			for (int i = 0; i < 16; i++) {
				unsigned b;
				sscanf(hex + 2 * i, "%2x", &b);
				out->s6_addr[i] = (uint8_t)b;
			}
			fclose(f);
			return 0;
		}
		if (f)
			fclose(f);
		usleep(100000);
	}
	return -1;
}

static int mcast_socket(void)
{
	int s = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
	int hops = 255;
	unsigned idx = if_nametoindex(IFACE);

	if (s < 0) {
		perror("raw icmpv6 socket");
		exit(2);
	}
	setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops);
	setsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &hops, sizeof hops);
	setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx);
	return s;
}

static struct sockaddr_in6 all_nodes(void)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_scope_id = if_nametoindex(IFACE)};
	inet_pton(AF_INET6, "ff02::1", &a.sin6_addr);
	return a;
}

static int ping_all(void)
{
	int s = mcast_socket();
	struct sockaddr_in6 dst = all_nodes();
	struct in6_addr self;
	struct icmp6_filter filt;
	char seen[8][INET6_ADDRSTRLEN];
	int nseen = 0;
	double end = now() + 3;

	if (self_ll(&self, 10) < 0) {
		printf("no-link-local\n");
		return 1;
	}
	ICMP6_FILTER_SETBLOCKALL(&filt);
	ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &filt);
	setsockopt(s, IPPROTO_ICMPV6, ICMP6_FILTER, &filt, sizeof filt);
	for (int seq = 0; seq < 3; seq++) {
		struct icmp6_hdr req = {.icmp6_type = ICMP6_ECHO_REQUEST};
		req.icmp6_id = htons(0x6a6a);
		req.icmp6_seq = htons((uint16_t)seq);
		if (sendto(s, &req, sizeof req, 0, (struct sockaddr *)&dst, sizeof dst) < 0)
			perror("send echo");
		double round = now() + 1;
		while (now() < round && now() < end) {
			struct pollfd p = {.fd = s, .events = POLLIN};
			struct sockaddr_in6 from;
			socklen_t len = sizeof from;
			char buf[1500], txt[INET6_ADDRSTRLEN];
			if (poll(&p, 1, 100) != 1 ||
			    recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len) < 0)
				continue;
			if (memcmp(&from.sin6_addr, &self, sizeof self) == 0)
				continue;
			inet_ntop(AF_INET6, &from.sin6_addr, txt, sizeof txt);
			int dup = 0;
			for (int i = 0; i < nseen; i++)
				dup |= strcmp(seen[i], txt) == 0;
			if (!dup && nseen < 8) {
				snprintf(seen[nseen++], sizeof seen[0], "%s", txt);
				printf("reply %s\n", txt);
			}
		}
	}
	printf("ping-done %d\n", nseen);
	return 0;
}

/* The host's TAP MAC is the IPv4 gateway's entry in the ARP table; its
 * link-local address (the kernel's default, EUI-64) follows from it. */
static int gateway_ll(struct in6_addr *out)
{
	FILE *f = fopen("/proc/net/arp", "r");
	char line[256], ip[64], mac[64], mask[16], dev[IFNAMSIZ + 1];
	unsigned hw, flags, m[6];

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "%63s %x %x %63s %15s %16s", ip, &hw, &flags, mac, mask, dev) !=
		        6 ||
		    strcmp(dev, IFACE) != 0 || !(flags & 2))
			continue;
		if (sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
			continue;
		fclose(f);
		memset(out, 0, sizeof *out);
		out->s6_addr[0] = 0xfe;
		out->s6_addr[1] = 0x80;
		out->s6_addr[8] = (uint8_t)(m[0] ^ 2);
		out->s6_addr[9] = (uint8_t)m[1];
		out->s6_addr[10] = (uint8_t)m[2];
		out->s6_addr[11] = 0xff;
		out->s6_addr[12] = 0xfe;
		out->s6_addr[13] = (uint8_t)m[3];
		out->s6_addr[14] = (uint8_t)m[4];
		out->s6_addr[15] = (uint8_t)m[5];
		return 0;
	}
	fclose(f);
	return -1;
}

static int tcp_gw(int port)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6,
	                         .sin6_port = htons((uint16_t)port),
	                         .sin6_scope_id = if_nametoindex(IFACE)};
	char txt[INET6_ADDRSTRLEN], buf[600];
	int s = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0), err = 0;
	socklen_t len = sizeof err;
	struct pollfd p = {.fd = s, .events = POLLOUT};
	ssize_t n;

	if (gateway_ll(&a.sin6_addr) < 0) {
		printf("tcp6 no-gateway-mac\n");
		return 1;
	}
	inet_ntop(AF_INET6, &a.sin6_addr, txt, sizeof txt);
	if (connect(s, (struct sockaddr *)&a, sizeof a) < 0 &&
	    (poll(&p, 1, 4000) != 1 || getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
	     err)) {
		printf("tcp6 %s unreachable\n", txt);
		return 1;
	}
	p.events = POLLIN;
	if (poll(&p, 1, 3000) != 1 || (n = read(s, buf, sizeof buf - 1)) <= 0) {
		printf("tcp6 %s unreachable\n", txt);
		return 1;
	}
	buf[n] = '\0';
	printf("tcp6 %s %s", txt, buf);
	return 0;
}

static size_t put_ra(uint8_t *b)
{
	struct nd_router_advert *ra = (struct nd_router_advert *)b;
	struct nd_opt_prefix_info *pi = (struct nd_opt_prefix_info *)(b + sizeof *ra);
	uint8_t *slla = b + sizeof *ra + sizeof *pi;
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	memset(b, 0, sizeof *ra + sizeof *pi + 8);
	ra->nd_ra_type = ND_ROUTER_ADVERT;
	ra->nd_ra_curhoplimit = 64;
	ra->nd_ra_router_lifetime = htons(1800);
	pi->nd_opt_pi_type = ND_OPT_PREFIX_INFORMATION;
	pi->nd_opt_pi_len = 4;
	pi->nd_opt_pi_prefix_len = 64;
	pi->nd_opt_pi_flags_reserved = ND_OPT_PI_FLAG_ONLINK | ND_OPT_PI_FLAG_AUTO;
	pi->nd_opt_pi_valid_time = htonl(86400);
	pi->nd_opt_pi_preferred_time = htonl(14400);
	inet_pton(AF_INET6, "2001:db8:cafe::", &pi->nd_opt_pi_prefix);
	slla[0] = ND_OPT_SOURCE_LINKADDR;
	slla[1] = 1;
	strcpy(ifr.ifr_name, IFACE);
	if (ioctl(s, SIOCGIFHWADDR, &ifr) == 0)
		memcpy(slla + 2, ifr.ifr_hwaddr.sa_data, 6);
	close(s);
	return sizeof *ra + sizeof *pi + 8;
}

static int send_ra(void)
{
	int s = mcast_socket(), sent = 0;
	struct sockaddr_in6 dst = all_nodes();
	struct in6_addr self;
	uint8_t b[128];
	size_t n = put_ra(b);

	/* the RA's source must be link-local, so DAD must be over */
	if (self_ll(&self, 10) < 0) {
		printf("no-link-local\n");
		return 1;
	}
	for (int i = 0; i < 3; i++) {
		if (sendto(s, b, n, 0, (struct sockaddr *)&dst, sizeof dst) == (ssize_t)n)
			sent++;
		else
			perror("send RA");
		usleep(300000);
	}
	printf("ra-sent %d\n", sent);
	return sent ? 0 : 1;
}

static int serve_tcp6(int port, const char *text)
{
	int s = socket(AF_INET6, SOCK_STREAM, 0), one = 1, zero = 0;
	struct sockaddr_in6 a = {
	    .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = in6addr_any};

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) {
		perror("bind");
		return 1;
	}
	printf("serving %d\n", port);
	fflush(stdout);
	for (;;) {
		struct sockaddr_in6 peer;
		socklen_t len = sizeof peer;
		char out[600], txt[INET6_ADDRSTRLEN];
		int c = accept(s, (struct sockaddr *)&peer, &len);
		if (c < 0)
			continue;
		inet_ntop(AF_INET6, &peer.sin6_addr, txt, sizeof txt);
		int n = snprintf(out, sizeof out, "%s from %s\n", text, txt);
		if (write(c, out, (size_t)n) < 0)
			perror("write");
		close(c);
	}
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "wait-ll") == 0) {
		struct in6_addr a;
		char txt[INET6_ADDRSTRLEN];
		if (self_ll(&a, 10) < 0) {
			printf("no-link-local\n");
			return 1;
		}
		printf("self %s\n", inet_ntop(AF_INET6, &a, txt, sizeof txt));
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "ping-all") == 0)
		return ping_all();
	if (argc == 3 && strcmp(argv[1], "tcp-gw") == 0)
		return tcp_gw(atoi(argv[2]));
	if (argc == 2 && strcmp(argv[1], "ra") == 0)
		return send_ra();
	if (argc == 4 && strcmp(argv[1], "serve-tcp6") == 0)
		return serve_tcp6(atoi(argv[2]), argv[3]);
	fprintf(stderr, "usage: see net6probe.c\n");
	return 2;
}
