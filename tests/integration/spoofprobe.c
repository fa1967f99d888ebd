/* SPDX-License-Identifier: Apache-2.0 */
/* Hostile-guest workload for the network tests, static so it runs in any
 * rootfs: forged IPv4/UDP frames on eth0.
 *   spoofprobe SECONDS
 * Every 200 ms for SECONDS, two frames to the gateway's MAC (the host's
 * side of the TAP), built the same way:
 *   forged   127.0.0.53:6000 -> 127.0.0.1:5000 "forged-loopback-reply": a
 *            "reply" in a conversation between two loopback sockets of the
 *            host (127.0.0.53 is systemd-resolved's stub address)
 *   control  GUEST:6000 -> GATEWAY:5001 "frame-from-guest": the guest's own
 *            addresses, a reply to a flow the host started, which the host
 *            takes; it shows that the frames themselves reach the host
 * They go out through an AF_PACKET socket: the guest's own stack would
 * route a 127.0.0.0/8 destination to its loopback. UDP port 6000 is bound,
 * so the host's packets to it are taken in quietly. Prints
 * "spoof gw=ADDR mac=MAC sent N", or "spoof-error WHAT". */
#include <arpa/inet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <netpacket/packet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IFACE "eth0"

static int fail(const char *what)
{
	printf("spoof-error %s\n", what);
	return 1;
}

static uint16_t checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* The default route's gateway, from /proc/net/route (network order). */
static int gateway(uint32_t *gw)
{
	FILE *f = fopen("/proc/net/route", "r");
	char line[256], dev[32];
	unsigned long dst, via;

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%31s %lx %lx", dev, &dst, &via) == 3 && dst == 0) {
			*gw = (uint32_t)via; /* printed as the in-memory word */
			fclose(f);
			return 0;
		}
	fclose(f);
	return -1;
}

/* The gateway's MAC from the ARP table, asking for it first (a datagram
 * to its discard port, which the host drops, makes the guest ARP). */
static int gateway_mac(uint32_t gw, uint8_t mac[6])
{
	char want[INET_ADDRSTRLEN];
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = gw};
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	inet_ntop(AF_INET, &gw, want, sizeof want);
	for (int tries = 0; tries < 50; tries++) {
		FILE *f = fopen("/proc/net/arp", "r");
		char line[256], ip[64], hw[64];
		unsigned type, flags;
		while (f && fgets(line, sizeof line, f))
			if (sscanf(line, "%63s %x %x %63s", ip, &type, &flags, hw) == 4 &&
			    strcmp(ip, want) == 0 && (flags & 2) &&
			    sscanf(hw, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2],
			           &mac[3], &mac[4], &mac[5]) == 6) {
				fclose(f);
				close(s);
				return 0;
			}
		if (f)
			fclose(f);
		sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a);
		usleep(100000);
	}
	close(s);
	return -1;
}

/* Ethernet + IPv4 + UDP (no UDP checksum, which IPv4 allows). */
static size_t frame(uint8_t *buf, const uint8_t dst_mac[6], const uint8_t src_mac[6], uint32_t src,
                    uint32_t dst, uint16_t sport, uint16_t dport, const char *text)
{
	struct ether_header *eth = (struct ether_header *)buf;
	struct iphdr *ip = (struct iphdr *)(buf + sizeof *eth);
	struct udphdr *udp = (struct udphdr *)(ip + 1);
	size_t len = strlen(text);

	memcpy(eth->ether_dhost, dst_mac, 6);
	memcpy(eth->ether_shost, src_mac, 6);
	eth->ether_type = htons(ETHERTYPE_IP);
	memset(ip, 0, sizeof *ip);
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons((uint16_t)(sizeof *ip + sizeof *udp + len));
	ip->id = htons(1);
	ip->frag_off = htons(IP_DF);
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->saddr = src;
	ip->daddr = dst;
	ip->check = checksum(ip, sizeof *ip);
	udp->uh_sport = htons(sport);
	udp->uh_dport = htons(dport);
	udp->uh_ulen = htons((uint16_t)(sizeof *udp + len));
	udp->uh_sum = 0;
	memcpy(udp + 1, text, len);
	return sizeof *eth + sizeof *ip + sizeof *udp + len;
}

int main(int argc, char **argv)
{
	struct ifreq ifr = {0};
	struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_halen = 6};
	struct sockaddr_in bound = {.sin_family = AF_INET, .sin_port = htons(6000)};
	uint8_t self_mac[6], gw_mac[6], forged[128], control[128];
	uint32_t self, gw;
	size_t nforged, ncontrol;
	int s, sink, sent = 0;
	double seconds = argc > 1 ? atof(argv[1]) : 10;
	char gws[INET_ADDRSTRLEN];

	s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
	sink = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || sink < 0 || bind(sink, (struct sockaddr *)&bound, sizeof bound) < 0)
		return fail("socket");
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, IFACE);
	if (ioctl(s, SIOCGIFADDR, &ifr) < 0)
		return fail("address");
	self = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr;
	if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0)
		return fail("mac");
	memcpy(self_mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(s, SIOCGIFINDEX, &ifr) < 0)
		return fail("index");
	to.sll_ifindex = ifr.ifr_ifindex;
	if (gateway(&gw) < 0 || gateway_mac(gw, gw_mac) < 0)
		return fail("gateway");
	memcpy(to.sll_addr, gw_mac, 6);
	nforged = frame(forged, gw_mac, self_mac, inet_addr("127.0.0.53"), inet_addr("127.0.0.1"),
	                6000, 5000, "forged-loopback-reply");
	ncontrol = frame(control, gw_mac, self_mac, self, gw, 6000, 5001, "frame-from-guest");
	for (double t = 0; t < seconds; t += 0.2) {
		if (sendto(s, forged, nforged, 0, (struct sockaddr *)&to, sizeof to) ==
		        (ssize_t)nforged &&
		    sendto(s, control, ncontrol, 0, (struct sockaddr *)&to, sizeof to) ==
		        (ssize_t)ncontrol)
			sent++;
		usleep(200000);
	}
	inet_ntop(AF_INET, &gw, gws, sizeof gws);
	printf("spoof gw=%s mac=%02x:%02x:%02x:%02x:%02x:%02x sent %d\n", gws, gw_mac[0], gw_mac[1],
	       gw_mac[2], gw_mac[3], gw_mac[4], gw_mac[5], sent);
	return 0;
}
