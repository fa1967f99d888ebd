/* SPDX-License-Identifier: Apache-2.0 */
/* ctr-jailer logs: what the workload wrote (stdout's lines on stdout,
 * stderr's on stderr) and what the console said (on stderr), from the
 * run's console.log (and console.log.1 before it; run/logfile.h). */
#include "lifecycle.h"

#include "run/logfile.h"
#include "run/runs.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct logs {
	bool follow, timestamps;
	long tail; /* -1: all */
	bool line_start;
	FILE *out;      /* the current line's stream */
	char carry[64]; /* a line's head cut by the end of a read (-f) */
	size_t ncarry;
	bool skip; /* dropping the rest of a line whose head rotation cut */
};

/* A line's head: "<time stamp> <mark> ", the stamp well under this. */
#define HEAD_MAX 48

static int opt_follow(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct logs *)c)->follow = true;
	return 0;
}

static int opt_timestamps(void *c, const char *v, const char *what, struct cj_err *err)
{
	(void)v, (void)what, (void)err;
	((struct logs *)c)->timestamps = true;
	return 0;
}

static int opt_tail(void *c, const char *v, const char *what, struct cj_err *err)
{
	char *end;
	long n;

	if (strcmp(v, "all") == 0)
		return ((struct logs *)c)->tail = -1, 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < 0)
		return cj_fail(err, 0, "%s '%s' is invalid: give a number of lines or 'all'", what,
		               v);
	((struct logs *)c)->tail = n;
	return 0;
}

static const struct cli_opt logs_opts[] = {
    {"follow", 'f', NULL, NULL, opt_follow, NULL, "Options",
     "keep printing what comes until the run ends"},
    {"tail", 'n', "N", NULL, opt_tail, NULL, "Options", "only the last N lines (default all)"},
    {"timestamps", 't', NULL, NULL, opt_timestamps, NULL, "Options",
     "start each line with the time it came (RFC 3339)"},
};

/* Out with the lines of buf on their stream's fd (stdout's lines on
 * stdout, stderr's and the console's on stderr), each line's time stamp
 * dropped unless --timestamps and its stream mark dropped; a line may
 * span calls, and so may its head (kept in carry until it is whole). A
 * head cut by rotation (no mark) drops its line. */
static void emit_lines(struct logs *l, const char *buf, size_t len)
{
	while (len) {
		if (l->skip) { /* the rest of a line whose head was cut */
			const char *nl = memchr(buf, '\n', len);
			if (!nl)
				return;
			len -= (size_t)(nl + 1 - buf);
			buf = nl + 1;
			l->skip = false;
			continue;
		}
		if (l->line_start) {
			const char *sp = memchr(buf, ' ', len < HEAD_MAX ? len : HEAD_MAX);
			if ((!sp && len < HEAD_MAX) || (sp && (size_t)(sp - buf) + 3 > len)) {
				memcpy(l->carry, buf, len); /* the rest of the head comes next */
				l->ncarry = len;
				return;
			}
			if (!sp || sp[2] != ' ') {
				l->skip = true;
				continue;
			}
			size_t stamp = (size_t)(sp + 1 - buf);
			l->out = sp[1] == CJ_LOG_STDOUT ? stdout : stderr;
			fflush(l->out == stdout ? stderr : stdout);
			if (l->timestamps)
				fwrite(buf, 1, stamp, l->out);
			len -= stamp + 2;
			buf += stamp + 2;
			l->line_start = false;
			continue;
		}
		const char *nl = memchr(buf, '\n', len);
		size_t n = nl ? (size_t)(nl - buf) + 1 : len;
		fwrite(buf, 1, n, l->out);
		l->line_start = nl != NULL;
		buf += n;
		len -= n;
	}
}

static void emit(struct logs *l, const char *buf, size_t len)
{
	/* a head begun in the last read: completed byte by byte (it is short) */
	while (l->ncarry && len) {
		l->carry[l->ncarry++] = *buf++;
		len--;
		const char *sp = memchr(l->carry, ' ', l->ncarry);
		if ((sp && (size_t)(sp - l->carry) + 3 <= l->ncarry) || l->ncarry >= HEAD_MAX) {
			size_t n = l->ncarry;
			char head[sizeof l->carry];
			memcpy(head, l->carry, n);
			l->ncarry = 0;
			emit_lines(l, head, n);
		}
	}
	emit_lines(l, buf, len);
}

/* The whole of both files, for --tail: at most 2 * CJ_LOG_MAX and a line. */
static char *slurp(const char *dir, size_t *len, off_t *cur)
{
	char path[PATH_MAX];
	char *all = NULL, *text;
	size_t n = 0, got;
	struct cj_err err = {0};

	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/" CJ_LOG_NAME "%s", dir, i == 0 ? ".1" : "");
		if (cj_read_file(path, &text, &got, &err) < 0)
			continue;
		if (i == 1)
			*cur = (off_t)got; /* -f goes on from there */
		char *grown = realloc(all, n + got + 1);
		if (grown) {
			memcpy(grown + n, text, got);
			all = grown;
			n += got;
			all[n] = '\0';
		}
		free(text);
	}
	*len = n;
	return all;
}

/* Where the last n lines of text start (n < 0: all). */
static size_t tail_start(const char *text, size_t len, long n)
{
	size_t i = len;
	long lines = 0;

	if (n < 0)
		return 0;
	if (i && text[i - 1] == '\n')
		i--; /* the last line's own newline */
	for (; i > 0; i--)
		if (text[i - 1] == '\n' && ++lines == n)
			return i;
	return n == 0 ? len : 0;
}

/* -f: the current file from offset on, across its rotations, until the
 * run ends and nothing more comes. */
static void follow(struct logs *l, const char *base, const char *id, const char *dir, off_t off)
{
	char path[PATH_MAX], buf[65536];
	struct stat a, b;
	int fd;

	snprintf(path, sizeof path, "%s/" CJ_LOG_NAME, dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	lseek(fd, off, SEEK_SET);
	for (;;) {
		bool alive = cj_runs_alive(base, id);
		ssize_t n;
		while ((n = read(fd, buf, sizeof buf)) > 0)
			emit(l, buf, (size_t)n);
		fflush(stdout);
		fflush(stderr);
		if (stat(path, &b) == 0 && fstat(fd, &a) == 0 && a.st_ino != b.st_ino) {
			/* rotated: what the old file still held was read; when it
			 * rotated twice meanwhile, the file between comes first */
			char older[PATH_MAX + 4];
			snprintf(older, sizeof older, "%s.1", path);
			close(fd);
			if (stat(older, &b) == 0 && b.st_ino != a.st_ino &&
			    (fd = open(older, O_RDONLY | O_CLOEXEC)) >= 0) {
				while ((n = read(fd, buf, sizeof buf)) > 0)
					emit(l, buf, (size_t)n);
				close(fd);
			}
			if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
				return;
			continue;
		}
		if (!alive)
			break;
		usleep(100000);
	}
	close(fd);
}

static int logs_main(const struct cli_verb *verb, int argc, char **argv)
{
	struct cj_err err = {0};
	struct logs l = {.tail = -1, .line_start = true, .out = stdout};
	char id[16], dir[PATH_MAX];
	const char *base = cli_run_base();
	size_t len;
	int first, r = cli_parse_args(verb, &l, argc, argv, &first, &err);

	if (r != 0)
		return r > 0 ? 0 : cli_report(&err, CJ_EXIT_RUNTIME);
	if (first + 1 != argc) {
		cli_help(verb, stderr);
		return CJ_EXIT_RUNTIME;
	}
	if (cj_runs_find(base, argv[first], id, &err) < 0)
		return cli_report(&err, CJ_EXIT_RUNTIME);
	snprintf(dir, sizeof dir, "%s/%s", base, id);
	off_t off = 0;
	char *text = slurp(dir, &len, &off);
	if (text) {
		size_t from = tail_start(text, len, l.tail);
		emit(&l, text + from, len - from);
	}
	free(text);
	if (l.follow)
		follow(&l, base, id, dir, off);
	fflush(stderr);
	return fflush(stdout) == 0 ? 0 : CJ_EXIT_RUNTIME;
}

const struct cli_verb cli_logs_verb = {
    .name = "logs",
    .usage = "logs [-f] [--tail N] [--timestamps] NAME|ID",
    .about = "Print what the workload wrote, stdout's lines on stdout and stderr's on "
             "stderr, and the guest's console on stderr (detached and named runs keep it, "
             "rotated at 1 MiB, two files).",
    .opts = logs_opts,
    .nopts = sizeof logs_opts / sizeof *logs_opts,
    .main = logs_main,
};
