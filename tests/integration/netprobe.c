/* SPDX-License-Identifier: Apache-2.0 */
/* Test workload for networking, static so it runs in any rootfs:
 *   netprobe serve-tcp PORT TEXT   reply "TEXT from PEER" to every connection
 *   netprobe serve-udp PORT TEXT   reply "TEXT from PEER" to every datagram
 *   netprobe tcp HOST PORT         connect, print the reply; exit 1 if unreachable
 *   netprobe udp HOST PORT         send, print the reply; exit 1 on timeout
 *   netprobe resolve NAME          print the first IPv4 address of NAME
 *   netprobe addr                  print eth0's IPv4 address */
#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int serve(int udp, int port, const char *text)
{
	int s = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || (!udp && listen(s, 16) < 0)) {
		perror("bind");
		return 1;
	}
	printf("serving %d\n", port);
	fflush(stdout);
	for (;;) {
		struct sockaddr_in peer;
		socklen_t len = sizeof peer;
		char buf[512], out[600];
		if (udp) {
			if (recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len) < 0)
				continue;
			int n = snprintf(out, sizeof out, "%s from %s\n", text,
			                 inet_ntoa(peer.sin_addr));
			sendto(s, out, (size_t)n, 0, (struct sockaddr *)&peer, len);
		} else {
			int c = accept(s, (struct sockaddr *)&peer, &len);
			if (c < 0)
				continue;
			int n = snprintf(out, sizeof out, "%s from %s\n", text,
			                 inet_ntoa(peer.sin_addr));
			if (write(c, out, (size_t)n) < 0)
				perror("write");
			close(c);
		}
	}
}

static int client(int udp, const char *host, int port)
{
	int s = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct pollfd p = {.fd = s};
	char buf[600];
	ssize_t n;

	inet_pton(AF_INET, host, &a.sin_addr);
	if (connect(s, (struct sockaddr *)&a, sizeof a) < 0 && !udp) {
		p.events = POLLOUT;
		int err = 0;
		socklen_t len = sizeof err;
		if (poll(&p, 1, 3000) != 1 || getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
		    err) {
			printf("unreachable\n");
			return 1;
		}
	}
	if (udp && send(s, "ping", 4, 0) < 0) {
		printf("unreachable\n");
		return 1;
	}
	p.events = POLLIN;
	if (poll(&p, 1, 3000) != 1 || (n = read(s, buf, sizeof buf - 1)) <= 0) {
		printf("unreachable\n");
		return 1;
	}
	buf[n] = '\0';
	printf("%s", buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "serve-tcp") == 0)
		return serve(0, atoi(argv[2]), argv[3]);
	if (argc == 4 && strcmp(argv[1], "serve-udp") == 0)
		return serve(1, atoi(argv[2]), argv[3]);
	if (argc == 4 && strcmp(argv[1], "tcp") == 0)
		return client(0, argv[2], atoi(argv[3]));
	if (argc == 4 && strcmp(argv[1], "udp") == 0)
		return client(1, argv[2], atoi(argv[3]));
	if (argc == 3 && strcmp(argv[1], "resolve") == 0) {
		struct addrinfo hints = {.ai_family = AF_INET}, *res;
		if (getaddrinfo(argv[2], NULL, &hints, &res) != 0) {
			printf("unresolved\n");
			return 1;
		}
		printf("%s\n", inet_ntoa(((struct sockaddr_in *)res->ai_addr)->sin_addr));
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "addr") == 0) {
		struct ifreq ifr = {0};
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		strcpy(ifr.ifr_name, "eth0");
		if (ioctl(s, SIOCGIFADDR, &ifr) < 0)
			return 1;
		printf("addr %s\n", inet_ntoa(((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr));
		return 0;
	}
	fprintf(stderr, "usage: see netprobe.c\n");
	return 2;
}
