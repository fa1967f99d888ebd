/* SPDX-License-Identifier: Apache-2.0 */
/* Listening sockets: which ones a published port shadows, and the real
 * sock_diag dump finding this process's own sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/sockdiag.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct cj_listener listener(const char *addr, uint16_t port, bool udp, bool v6only)
{
	struct cj_listener l = {.port = port, .udp = udp, .v6only = v6only};

	l.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(l.family, addr, l.addr), 1);
	return l;
}

static void test_shadowed(void **state)
{
	const uint32_t any = 0, host = inet_addr("192.0.2.1"), lo = inet_addr("127.0.0.1");
	const struct {
		const char *addr;
		bool v6only;
		uint32_t host_ip;
		bool shadowed;
	} cases[] = {
	    {"0.0.0.0", false, any, true},
	    {"0.0.0.0", false, host, true},
	    {"192.0.2.1", false, any, true},
	    {"192.0.2.1", false, host, true},
	    {"127.0.0.1", false, any, true},
	    {"127.0.0.1", false, host, false},
	    {"127.0.0.1", false, lo, true},
	    {"192.0.2.9", false, host, false},
	    {"::", false, any, true},
	    {"::", false, host, true},
	    {"::", true, any, false},
	    {"::", true, host, false},
	    {"::ffff:192.0.2.1", false, host, true},
	    {"::ffff:192.0.2.9", false, host, false},
	    {"::ffff:192.0.2.9", false, any, true},
	    {"2001:db8::1", false, any, false},
	    {"fe80::1", false, host, false},
	    {"::1", false, lo, false},
	};
	(void)state;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cj_listener l = listener(cases[i].addr, 8000, false, cases[i].v6only);
		if (cj_listener_shadowed(&l, cases[i].host_ip, 8000, false) != cases[i].shadowed)
			fail_msg("case %zu: %s v6only=%d", i, cases[i].addr, cases[i].v6only);
		/* another port or the other protocol is never shadowed */
		assert_false(cj_listener_shadowed(&l, cases[i].host_ip, 8001, false));
		assert_false(cj_listener_shadowed(&l, cases[i].host_ip, 8000, true));
	}
}

static void test_addr_str(void **state)
{
	struct cj_listener a = listener("0.0.0.0", 8000, false, false);
	struct cj_listener b = listener("::", 53, true, false);
	char buf[80];
	(void)state;

	cj_listener_addr_str(&a, buf, sizeof buf);
	assert_string_equal(buf, "0.0.0.0:8000");
	cj_listener_addr_str(&b, buf, sizeof buf);
	assert_string_equal(buf, "[::]:53");
}

static int bound(int family, int type, const char *addr, int v6only, uint16_t *port,
                 uint32_t *inode)
{
	struct sockaddr_storage ss = {0};
	socklen_t len = sizeof ss;
	struct stat st;
	int s = socket(family, type | SOCK_CLOEXEC, 0);

	assert_true(s >= 0);
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &a->sin6_addr);
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
		len = sizeof *a;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &a->sin_addr);
		len = sizeof *a;
	}
	if (bind(s, (struct sockaddr *)&ss, len) < 0) {
		close(s);
		return -1;
	}
	if (type == SOCK_STREAM)
		assert_int_equal(listen(s, 1), 0);
	len = sizeof ss;
	assert_int_equal(getsockname(s, (struct sockaddr *)&ss, &len), 0);
	*port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                 : ((struct sockaddr_in *)&ss)->sin_port);
	assert_int_equal(fstat(s, &st), 0);
	*inode = (uint32_t)st.st_ino;
	return s;
}

static bool find(const struct cj_listener *v, size_t n, uint32_t inode, struct cj_listener *out)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].inode == inode) {
			*out = v[i];
			return true;
		}
	return false;
}

static void test_dump_finds_own_sockets(void **state)
{
	struct cj_listener *v = NULL;
	struct cj_listener l;
	struct cj_err err = {0};
	uint16_t tport, uport, cport;
	uint32_t tino, uino, cino;
	size_t n = 0;
	char comm[64];
	pid_t pid = 0;
	(void)state;

	int t = bound(AF_INET, SOCK_STREAM, "127.0.0.1", 0, &tport, &tino);
	int u = bound(AF_INET6, SOCK_DGRAM, "::", 1, &uport, &uino);
	int c = bound(AF_INET, SOCK_DGRAM, "127.0.0.1", 0, &cport, &cino);
	assert_true(t >= 0 && c >= 0);
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(tport)};
	peer.sin_addr.s_addr = inet_addr("127.0.0.1");
	assert_int_equal(connect(c, (struct sockaddr *)&peer, sizeof peer), 0);

	if (cj_sockdiag_listeners(false, &v, &n, &err) < 0)
		skip(); /* no sock_diag here (module not loadable) */
	assert_true(find(v, n, tino, &l));
	assert_int_equal(l.family, AF_INET);
	assert_int_equal(l.port, tport);
	assert_false(l.udp);
	assert_true(cj_listener_shadowed(&l, 0, tport, false));
	assert_int_equal(cj_socket_owner(tino, &pid, comm, sizeof comm), 0);
	assert_int_equal(pid, getpid());
	assert_string_equal(comm, "test_sockdiag");
	free(v);

	assert_int_equal(cj_sockdiag_listeners(true, &v, &n, &err), 0);
	assert_false(find(v, n, cino, &l)); /* connected: not a listener */
	if (u >= 0) {                       /* IPv6 may be off on this host */
		assert_true(find(v, n, uino, &l));
		assert_int_equal(l.family, AF_INET6);
		assert_true(l.udp);
		assert_true(l.v6only);
		assert_false(cj_listener_shadowed(&l, 0, uport, true));
	}
	free(v);
	assert_int_equal(cj_socket_owner(0xfffffff0u, &pid, comm, sizeof comm), -1);
	close(t);
	close(c);
	if (u >= 0)
		close(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shadowed),
	    cmocka_unit_test(test_addr_str),
	    cmocka_unit_test(test_dump_finds_own_sockets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
