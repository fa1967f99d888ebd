/* SPDX-License-Identifier: Apache-2.0 */
/* A tiny stand-in for libFuzzer, so that the fuzz targets also run as
 * ordinary tests with any compiler: the target's seeds, then mutations of
 * them (and some plain random inputs) from a fixed PRNG seed, each input in
 * an exactly-sized heap buffer so that ASan catches any overread.
 *
 *   fuzz_x-standalone                  seeds + FUZZ_RUNS (default 20000) inputs
 *   fuzz_x-standalone FILE...          replay inputs (e.g. libFuzzer crash files)
 *   fuzz_x-standalone --write-corpus DIR   write the seeds as a libFuzzer corpus
 */
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define MAX_SEEDS 64
#define MAX_INPUT (64u * 1024u)

struct seeds {
	uint8_t *data[MAX_SEEDS];
	size_t size[MAX_SEEDS];
	size_t n;
};

static void collect(const uint8_t *data, size_t size, void *ctx)
{
	struct seeds *s = ctx;
	uint8_t *copy;

	FUZZ_CHECK(s->n < MAX_SEEDS);
	copy = malloc(size ? size : 1);
	FUZZ_CHECK(copy);
	if (size)
		memcpy(copy, data, size);
	s->data[s->n] = copy;
	s->size[s->n++] = size;
}

/* Run the target on an exact-size heap copy. */
static void run_one(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);

	FUZZ_CHECK(copy);
	if (size)
		memcpy(copy, data, size);
	LLVMFuzzerTestOneInput(copy, size);
	free(copy);
}

/* ---- PRNG and mutator ------------------------------------------------------ */

static uint64_t rng_state = 0x5eed5eed12345678ull;

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

/* A position biased towards the start, where headers live. */
static size_t rnd_pos(size_t len)
{
	size_t window = (size_t)16 << rnd_below(10);
	return rnd_below(len < window ? len : window);
}

static const uint32_t interesting32[] = {
    0,          1,          2,          3,      4,       7,       8,       15,
    16,         17,         63,         64,     65,      127,     128,     255,
    256,        479,        480,        481,    512,     4095,    4096,    65535,
    65536,      262143,     262144,     262145, 1048575, 1048576, 1048577, 0x7fffffff,
    0x80000000, 0xfffffffe, 0xffffffff, 0x8001, 0x8002,  0x8003,  0x8004,  0x0005,
    0x0006,     0x8007,     0x0008,     0x0009, 0x000a,  0x8000,  0x7fff,  0xffff,
};

static const uint8_t interesting8[] = {0, 1, 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff, '=', '/', ':'};

struct buf {
	uint8_t *p;
	size_t len;
};

static void put_le(uint8_t *p, uint32_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void insert(struct buf *b, size_t pos, const uint8_t *src, size_t n)
{
	if (b->len + n > MAX_INPUT)
		return;
	memmove(b->p + pos + n, b->p + pos, b->len - pos);
	memcpy(b->p + pos, src, n);
	b->len += n;
}

static void mutate(struct buf *b, const struct seeds *s)
{
	uint8_t tmp[64];
	size_t pos, n;

	switch (rnd_below(11)) {
	case 0: /* flip a bit */
		if (b->len)
			b->p[rnd_pos(b->len)] ^= (uint8_t)(1u << rnd_below(8));
		break;
	case 1: /* random byte */
		if (b->len)
			b->p[rnd_pos(b->len)] = (uint8_t)rnd();
		break;
	case 2: /* interesting byte */
		if (b->len)
			b->p[rnd_pos(b->len)] = interesting8[rnd_below(sizeof interesting8)];
		break;
	case 3: /* interesting 32-bit little-endian value, often 4-aligned */
	case 4: /* interesting 16-bit value (record types) */
		n = b->len >= 4 && rnd_below(2) ? 4 : 2;
		if (b->len >= n) {
			pos = rnd_pos(b->len - n + 1);
			if (rnd_below(2))
				pos &= ~(size_t)3;
			put_le(b->p + pos, interesting32[rnd_below(sizeof interesting32 / 4)], n);
		}
		break;
	case 5: /* insert random bytes */
		n = 1 + rnd_below(16);
		for (size_t i = 0; i < n; i++)
			tmp[i] = (uint8_t)rnd();
		insert(b, rnd_below(b->len + 1), tmp, n);
		break;
	case 6: /* delete a chunk */
		if (b->len) {
			pos = rnd_pos(b->len);
			n = 1 + rnd_below(b->len - pos < 32 ? b->len - pos : 32);
			memmove(b->p + pos, b->p + pos + n, b->len - pos - n);
			b->len -= n;
		}
		break;
	case 7: /* duplicate a chunk somewhere else */
		if (b->len) {
			pos = rnd_below(b->len);
			n = 1 + rnd_below(b->len - pos < sizeof tmp ? b->len - pos : sizeof tmp);
			memcpy(tmp, b->p + pos, n);
			insert(b, rnd_below(b->len + 1), tmp, n);
		}
		break;
	case 8: /* truncate */
		b->len = rnd_below(b->len + 1);
		break;
	case 9: { /* splice: our head, another seed's tail */
		size_t k = rnd_below(s->n), cut = rnd_below(b->len + 1),
		       from = rnd_below(s->size[k] + 1);
		if (cut + s->size[k] - from <= MAX_INPUT) {
			memcpy(b->p + cut, s->data[k] + from, s->size[k] - from);
			b->len = cut + s->size[k] - from;
		}
		break;
	}
	default: /* extend with zeros */
		n = 1 + rnd_below(32);
		memset(tmp, 0, n);
		insert(b, b->len, tmp, n);
		break;
	}
}

/* ---- modes ----------------------------------------------------------------- */

static int replay(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t *data = malloc(MAX_INPUT * 32);
		size_t n;

		if (!f || !data) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			free(data);
			if (f)
				fclose(f);
			return 1;
		}
		n = fread(data, 1, MAX_INPUT * 32, f);
		fclose(f);
		fprintf(stderr, "replaying %s (%zu bytes)\n", argv[i], n);
		run_one(data, n);
		free(data);
	}
	return 0;
}

static int write_corpus(const char *dir, const struct seeds *s)
{
	for (size_t i = 0; i < s->n; i++) {
		char path[4096];
		FILE *f;

		snprintf(path, sizeof path, "%s/seed-%02zu", dir, i);
		f = fopen(path, "wb");
		if (!f || fwrite(s->data[i], 1, s->size[i], f) != s->size[i] || fclose(f) != 0) {
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	fprintf(stderr, "wrote %zu seeds to %s\n", s->n, dir);
	return 0;
}

int main(int argc, char **argv)
{
	struct seeds s = {0};
	struct buf b;
	const char *env_runs = getenv("FUZZ_RUNS");
	unsigned long runs = env_runs ? strtoul(env_runs, NULL, 10) : 20000;
	int rc = 0;

	fuzz_seeds(collect, &s);
	FUZZ_CHECK(s.n > 0);

	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) {
		rc = write_corpus(argv[2], &s);
		goto out;
	}
	if (argc > 1) {
		rc = replay(argc, argv);
		goto out;
	}

	for (size_t i = 0; i < s.n; i++)
		run_one(s.data[i], s.size[i]);

	b.p = malloc(MAX_INPUT);
	FUZZ_CHECK(b.p);
	for (unsigned long i = 0; i < runs; i++) {
		if (rnd_below(50) == 0) {
			/* Plain random input. */
			b.len = rnd_below(rnd_below(2) ? 64 : 4096);
			for (size_t j = 0; j < b.len; j++)
				b.p[j] = (uint8_t)rnd();
		} else {
			size_t k = rnd_below(s.n);
			memcpy(b.p, s.data[k], s.size[k]);
			b.len = s.size[k];
			/* Mostly one or two mutations, sometimes a burst. */
			for (size_t m = 1 + (rnd_below(4) ? rnd_below(2) : rnd_below(8)); m; m--)
				mutate(&b, &s);
		}
		run_one(b.p, b.len);
	}
	free(b.p);
	printf("%zu seeds + %lu generated inputs, %lu accepted by the parser\n", s.n, runs,
	       fuzz_accepted);
out:
	for (size_t i = 0; i < s.n; i++)
		free(s.data[i]);
	return rc;
}
