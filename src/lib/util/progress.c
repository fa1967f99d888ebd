/* SPDX-License-Identifier: Apache-2.0 */
/* Progress lines for long steps; see progress.h. */
#include "util/progress.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/sanitize.h"

#define REDRAW_NS      100000000ull
#define LINES_AFTER_NS 1000000000ull /* a shorter step writes no line */

struct cj_progress {
	struct cj_progress *next;
	char what[96];
	enum cj_progress_unit unit;
	uint64_t total, done, start_ns;
	bool announced; /* its start line was written (lines mode) */
};

static struct {
	pthread_mutex_t lock;
	int fd;
	enum cj_progress_mode mode;
	struct cj_progress *open;
	uint64_t last_draw_ns;
	bool drawn; /* a tty line is on screen, to be cleared */
} g = {PTHREAD_MUTEX_INITIALIZER, -1, CJ_PROGRESS_QUIET, NULL, 0, false};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void cj_progress_setup(int fd, enum cj_progress_mode mode)
{
	pthread_mutex_lock(&g.lock);
	g.fd = fd;
	g.mode = fd < 0 ? CJ_PROGRESS_QUIET : mode;
	pthread_mutex_unlock(&g.lock);
}

enum cj_progress_mode cj_progress_mode_for(int fd, bool quiet)
{
	if (quiet)
		return CJ_PROGRESS_QUIET;
	return isatty(fd) ? CJ_PROGRESS_TTY : CJ_PROGRESS_LINES;
}

void cj_progress_fmt_size(uint64_t bytes, char *buf, unsigned len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

static void fmt_amount(enum cj_progress_unit unit, uint64_t n, char *buf, unsigned len)
{
	if (unit == CJ_PROGRESS_BYTES)
		cj_progress_fmt_size(n, buf, len);
	else
		snprintf(buf, len, "%llu files", (unsigned long long)n);
}

static void write_all(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(g.fd, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* "what: done/total (rate/s, ETA 12s)" for one step or the sum of the open
 * steps. */
static void describe(const char *what, enum cj_progress_unit unit, uint64_t done, uint64_t total,
                     uint64_t elapsed_ns, char *buf, size_t len)
{
	char d[32], t[32], r[32], eta[32] = "";
	double secs = (double)elapsed_ns / 1e9;
	double rate = secs > 0.05 ? (double)done / secs : 0;

	fmt_amount(unit, done, d, sizeof d);
	fmt_amount(unit, (uint64_t)rate, r, sizeof r);
	if (total > done && rate > 0)
		snprintf(eta, sizeof eta, ", %.0fs left", (double)(total - done) / rate);
	if (total) {
		fmt_amount(unit, total, t, sizeof t);
		snprintf(buf, len, "%s: %s of %s (%s/s%s)", what, d, t, r, eta);
	} else {
		snprintf(buf, len, "%s: %s (%s/s)", what, d, r);
	}
}

static void draw_locked(uint64_t now)
{
	char line[256], what[128], safe[512];
	uint64_t done = 0, total = 0, start = now;
	unsigned n = 0;
	enum cj_progress_unit unit = CJ_PROGRESS_BYTES;
	bool unknown = false;

	for (struct cj_progress *p = g.open; p; p = p->next) {
		done += p->done;
		total += p->total;
		unknown |= p->total == 0;
		start = p->start_ns < start ? p->start_ns : start;
		unit = p->unit;
		n++;
	}
	if (n == 0)
		return;
	if (n == 1)
		snprintf(what, sizeof what, "%s", g.open->what);
	else
		snprintf(what, sizeof what, "%u steps", n);
	describe(what, unit, done, unknown ? 0 : total, now - start, line, sizeof line);
	cj_sanitize(line, strlen(line), safe, sizeof safe);
	write_all("\r\033[K", 4);
	write_all(safe, strlen(safe));
	g.drawn = true;
	g.last_draw_ns = now;
}

static void clear_locked(void)
{
	if (g.drawn)
		write_all("\r\033[K", 4);
	g.drawn = false;
}

static void line_locked(const char *text)
{
	char safe[512];

	cj_sanitize(text, strlen(text), safe, sizeof safe);
	clear_locked();
	write_all("ctr-jailer: ", 12);
	write_all(safe, strlen(safe));
	write_all("\n", 1);
}

struct cj_progress *cj_progress_start(const char *what, enum cj_progress_unit unit, uint64_t total)
{
	struct cj_progress *p;

	if (g.mode == CJ_PROGRESS_QUIET)
		return NULL;
	if (!(p = calloc(1, sizeof *p)))
		return NULL;
	snprintf(p->what, sizeof p->what, "%s", what);
	p->unit = unit;
	p->total = total;
	p->start_ns = now_ns();
	pthread_mutex_lock(&g.lock);
	p->next = g.open;
	g.open = p;
	if (g.mode == CJ_PROGRESS_TTY)
		draw_locked(p->start_ns);
	pthread_mutex_unlock(&g.lock);
	return p;
}

/* Lines mode: the start line, once the step has run LINES_AFTER_NS. */
static void announce_locked(struct cj_progress *p, uint64_t now)
{
	char line[160], t[32];

	if (g.mode != CJ_PROGRESS_LINES || p->announced || now - p->start_ns < LINES_AFTER_NS)
		return;
	fmt_amount(p->unit, p->total, t, sizeof t);
	if (p->total)
		snprintf(line, sizeof line, "%s: %s", p->what, t);
	else
		snprintf(line, sizeof line, "%s", p->what);
	line_locked(line);
	p->announced = true;
}

void cj_progress_add(struct cj_progress *p, uint64_t n)
{
	uint64_t now;

	if (!p)
		return;
	pthread_mutex_lock(&g.lock);
	p->done += n;
	now = now_ns();
	if (g.mode == CJ_PROGRESS_TTY && now - g.last_draw_ns >= REDRAW_NS)
		draw_locked(now);
	announce_locked(p, now);
	pthread_mutex_unlock(&g.lock);
}

void cj_progress_total(struct cj_progress *p, uint64_t total)
{
	if (!p)
		return;
	pthread_mutex_lock(&g.lock);
	p->total = total;
	pthread_mutex_unlock(&g.lock);
}

void cj_progress_end(struct cj_progress *p, bool ok)
{
	char line[256], what[128];
	uint64_t now = now_ns();

	if (!p)
		return;
	pthread_mutex_lock(&g.lock);
	for (struct cj_progress **pp = &g.open; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	snprintf(what, sizeof what, "%s %s", p->what, ok ? "done" : "failed");
	describe(what, p->unit, p->done, 0, now - p->start_ns, line, sizeof line);
	announce_locked(p, now); /* a long step with no progress since its second */
	if (g.mode == CJ_PROGRESS_TTY || p->announced)
		line_locked(line);
	if (g.mode == CJ_PROGRESS_TTY && g.open)
		draw_locked(now);
	pthread_mutex_unlock(&g.lock);
	free(p);
}
