/* SPDX-License-Identifier: Apache-2.0 */
/* `logs`: lines come out on their stream's fd with their heads dropped,
 * however the reads of `logs -f` cut them (a head split between two reads
 * was dropped with what followed it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* the verb's own file, for its static emit(); the CLI around it stubbed */
#include "../../src/cli/logs.c"

const char *cli_run_base(void)
{
	return "/nonexistent";
}
int cli_parse_args(const struct cli_verb *v, void *c, int argc, char **argv, int *first,
                   struct cj_err *err)
{
	(void)v, (void)c, (void)argc, (void)argv, (void)first, (void)err;
	return -1;
}
int cli_report(const struct cj_err *err, int code)
{
	(void)err;
	return code;
}
void cli_help(const struct cli_verb *v, FILE *f)
{
	(void)v, (void)f;
}

static const char LOG[] = "2026-11-30T04:00:00.000000001Z o out one\n"
                          "2026-11-30T04:00:00.000000002Z e err one\n"
                          "2026-11-30T04:00:00.000000003Z o out two\n";

/* emit() of LOG in chunks of the given sizes, stdout and stderr captured */
static void run_split(size_t a, size_t b, char *out, char *err)
{
	FILE *o = fmemopen(out, 256, "w"), *e = fmemopen(err, 256, "w");
	struct logs l = {.line_start = true};
	FILE *so = stdout, *se = stderr;
	size_t len = sizeof LOG - 1;

	stdout = o, stderr = e;
	emit(&l, LOG, a);
	emit(&l, LOG + a, b - a);
	emit(&l, LOG + b, len - b);
	fflush(o), fflush(e);
	stdout = so, stderr = se;
	fclose(o), fclose(e);
}

static void test_every_split_gives_the_same_lines(void **state)
{
	(void)state;
	for (size_t a = 0; a < sizeof LOG - 1; a++) {
		for (size_t b = a; b < sizeof LOG - 1; b += 7) {
			char out[256] = {0}, err[256] = {0};
			run_split(a, b, out, err);
			if (strcmp(out, "out one\nout two\n") || strcmp(err, "err one\n"))
				fail_msg("split %zu/%zu: out '%s' err '%s'", a, b, out, err);
		}
	}
}

static void test_a_head_cut_by_rotation_drops_its_line(void **state)
{
	static const char cut[] = "t two\n2026-11-30T04:00:01Z o kept\n";
	char out[256] = {0}, err[256] = {0};
	FILE *o = fmemopen(out, sizeof out, "w"), *e = fmemopen(err, sizeof err, "w");
	FILE *so = stdout, *se = stderr;
	struct logs l = {.line_start = true};
	(void)state;

	stdout = o, stderr = e;
	emit(&l, cut, sizeof cut - 1);
	fflush(o), fflush(e);
	stdout = so, stderr = se;
	fclose(o), fclose(e);
	assert_string_equal(out, "kept\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_split_gives_the_same_lines),
	    cmocka_unit_test(test_a_head_cut_by_rotation_drops_its_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
