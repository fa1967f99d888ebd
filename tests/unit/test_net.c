/* SPDX-License-Identifier: Apache-2.0 */
/* Parsers of networking and volume options: hostile and edge input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ctrj/protocol.h"
#include "net/net.h"
#include "volume/volume.h"

#include <arpa/inet.h>
#include <string.h>

static void test_port_parse(void **state)
{
	struct cj_port p;
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_port_parse("8080:80", &p, &err), 0);
	assert_int_equal(p.host_port, 8080);
	assert_int_equal(p.guest_port, 80);
	assert_false(p.udp);
	assert_int_equal(p.host_ip, 0);
	assert_int_equal(cj_port_parse("5353:53/udp", &p, &err), 0);
	assert_true(p.udp);
	assert_int_equal(cj_port_parse("127.0.0.1:8080:80/tcp", &p, &err), 0);
	assert_int_equal(p.host_ip, inet_addr("127.0.0.1"));
	const char *bad[] = {"",
	                     "80",
	                     ":80",
	                     "80:",
	                     "0:80",
	                     "80:0",
	                     "65536:80",
	                     "8080:80/sctp",
	                     "1.2.3:80:80",
	                     "a:b",
	                     "80:80:80:80",
	                     "8080:80/udp/tcp",
	                     "99999999999999999999:1",
	                     NULL};
	for (size_t i = 0; bad[i]; i++) {
		memset(&err, 0, sizeof err);
		assert_int_equal(cj_port_parse(bad[i], &p, &err), -1);
		assert_non_null(strstr(err.msg, "published port"));
	}
}

static void test_publish_env(void **state)
{
	struct cj_net_spec spec = {0};
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_publish_env_parse("8080:80, 5353:53/udp,,", &spec, &err), 0);
	assert_int_equal(spec.nports, 2);
	assert_true(spec.ports[1].udp);
	memset(&spec, 0, sizeof spec);
	assert_int_equal(cj_publish_env_parse("8080:80,bogus", &spec, &err), -1);
	assert_non_null(strstr(err.msg, "PUBLISH"));
}

static void test_cidr30(void **state)
{
	uint32_t host, guest;
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_cidr30_parse("10.20.30.1/30", &host, &guest, &err), 0);
	assert_int_equal(host, inet_addr("10.20.30.1"));
	assert_int_equal(guest, inet_addr("10.20.30.2"));
	assert_int_equal(cj_cidr30_parse("10.20.30.2/255.255.255.252", &host, &guest, &err), 0);
	assert_int_equal(guest, inet_addr("10.20.30.1"));
	assert_int_equal(cj_cidr30_parse("10.20.30.1", &host, &guest, &err), 0); /* /30 implied */
	const char *bad[] = {"10.20.30.0/30",
	                     "10.20.30.3/30",
	                     "10.20.30.1/24",
	                     "10.20.30.1/",
	                     "nonsense",
	                     "10.20.30.1/30/30",
	                     "",
	                     NULL};
	for (size_t i = 0; bad[i]; i++)
		assert_int_equal(cj_cidr30_parse(bad[i], &host, &guest, &err), -1);
}

static void test_volume_spec(void **state)
{
	struct cj_volume_spec v;
	struct cj_err err = {0};
	(void)state;

	assert_int_equal(cj_volume_spec_parse("data:/srv/data:ro:size=2G", &v, &err), 0);
	assert_string_equal(v.source, "data");
	assert_string_equal(v.guest_path, "/srv/data");
	assert_true(v.read_only);
	assert_int_equal(v.size, 2ull << 30);
	cj_volume_spec_free(&v);
	assert_int_equal(cj_volume_spec_parse("/images/x.ext4:/x", &v, &err), 0);
	cj_volume_spec_free(&v);
	const char *bad[] = {"data",
	                     "data:relative",
	                     ":/x",
	                     "data:/x:size=0",
	                     "data:/x:size=1K",
	                     "data:/x:size=lots",
	                     "data:/x:bogus",
	                     NULL};
	for (size_t i = 0; bad[i]; i++) {
		memset(&err, 0, sizeof err);
		assert_int_equal(cj_volume_spec_parse(bad[i], &v, &err), -1);
		assert_true(err.msg[0] != '\0');
	}
}

static void test_secret_names(void **state)
{
	(void)state;
	assert_true(ctrj_secret_name_valid("db_password", 11));
	assert_true(ctrj_secret_name_valid("tls.key-1", 9));
	assert_false(ctrj_secret_name_valid("", 0));
	assert_false(ctrj_secret_name_valid(".", 1));
	assert_false(ctrj_secret_name_valid("..", 2));
	assert_false(ctrj_secret_name_valid("a/b", 3));
	assert_false(ctrj_secret_name_valid("a b", 3));
	assert_false(ctrj_secret_name_valid("a\0b", 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_port_parse),   cmocka_unit_test(test_publish_env),
	    cmocka_unit_test(test_cidr30),       cmocka_unit_test(test_volume_spec),
	    cmocka_unit_test(test_secret_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
