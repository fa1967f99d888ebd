/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz the terminal sanitisers (cj_sanitize, cj_json_terminal_safe): any
 * bytes an image or a guest supplies must come out as valid UTF-8 without
 * a control character, lose nothing when the buffer is large enough, and
 * (JSON) keep meaning what json-c wrote. The checks below decode UTF-8 on
 * their own rather than trusting the decoder under test. */
#include "fuzz.h"

#include "util/sanitize.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <string.h>

unsigned long fuzz_accepted;

/* RFC 3629's table of well-formed sequences: first byte range, then the
 * range of the second byte; later bytes are 80-BF. */
static const struct {
	unsigned char lo, hi, second_lo, second_hi, len;
} well_formed[] = {
    {0x00, 0x7f, 0, 0, 1},       {0xc2, 0xdf, 0x80, 0xbf, 2}, {0xe0, 0xe0, 0xa0, 0xbf, 3},
    {0xe1, 0xec, 0x80, 0xbf, 3}, {0xed, 0xed, 0x80, 0x9f, 3}, {0xee, 0xef, 0x80, 0xbf, 3},
    {0xf0, 0xf0, 0x90, 0xbf, 4}, {0xf1, 0xf3, 0x80, 0xbf, 4}, {0xf4, 0xf4, 0x80, 0x8f, 4},
};

/* Length of the well-formed sequence at s, 0 if none; its code point. */
static size_t next_char(const unsigned char *s, size_t n, unsigned long *cp)
{
	for (size_t r = 0; r < sizeof well_formed / sizeof well_formed[0]; r++) {
		size_t len = well_formed[r].len;
		if (s[0] < well_formed[r].lo || s[0] > well_formed[r].hi)
			continue;
		if (n < len)
			return 0;
		if (len > 1 && (s[1] < well_formed[r].second_lo || s[1] > well_formed[r].second_hi))
			return 0;
		for (size_t i = 2; i < len; i++)
			if (s[i] < 0x80 || s[i] > 0xbf)
				return 0;
		static const unsigned long lead_mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
		*cp = s[0] & lead_mask[len];
		for (size_t i = 1; i < len; i++)
			*cp = (*cp << 6) | (s[i] & 0x3f);
		return len;
	}
	return 0;
}

static bool terminal_control(unsigned long cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Valid UTF-8 with no terminal control (newline and tab allowed when
 * layout is true: JSON's own). */
static bool terminal_safe(const char *text, bool layout)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = strlen(text);

	for (size_t i = 0; i < n;) {
		unsigned long cp;
		size_t len = next_char(s + i, n - i, &cp);
		if (!len || (terminal_control(cp) && !(layout && (cp == '\n' || cp == '\t'))))
			return false;
		i += len;
	}
	return true;
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned long cp;
		size_t len = next_char(s + i, n - i, &cp);
		if (!len)
			return false;
		i += len;
	}
	return true;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Undo the \xNN escapes; only meaningful when the input had no backslash. */
static size_t unescape(const char *s, uint8_t *out)
{
	size_t o = 0;

	while (*s) {
		if (s[0] == '\\') {
			FUZZ_CHECK(s[1] == 'x' && hexval(s[2]) >= 0 && hexval(s[3]) >= 0);
			out[o++] = (uint8_t)(hexval(s[2]) << 4 | hexval(s[3]));
			s += 4;
		} else {
			out[o++] = (uint8_t)*s++;
		}
	}
	return o;
}

static void check_sanitize(const uint8_t *data, size_t size, size_t small)
{
	size_t cap = 4 * size + 1;
	char *full = malloc(cap), *part = malloc(small + 1);
	uint8_t *back = malloc(cap);

	FUZZ_CHECK(full && part && back);
	size_t n = cj_sanitize((const char *)data, size, full, cap);
	FUZZ_CHECK(n == strlen(full) && n < cap);
	FUZZ_CHECK(terminal_safe(full, false));
	/* large enough: nothing lost */
	if (!memchr(data, '\\', size)) {
		FUZZ_CHECK(unescape(full, back) == size);
		FUZZ_CHECK(memcmp(back, data, size) == 0);
	}
	/* too small: a prefix of the whole, cut between characters */
	size_t m = cj_sanitize((const char *)data, size, part, small + 1);
	FUZZ_CHECK(m == strlen(part) && m <= small && m <= n);
	FUZZ_CHECK(memcmp(part, full, m) == 0);
	FUZZ_CHECK(terminal_safe(part, false));
	free(full);
	free(part);
	free(back);
}

static void check_json(const uint8_t *data, size_t size)
{
	json_object *o = json_object_new_object();

	FUZZ_CHECK(o);
	/* the bytes as a key and as a value, the way labels are printed */
	char *key = strndup((const char *)data, size);
	FUZZ_CHECK(key);
	json_object_object_add(o, key, json_object_new_string_len((const char *)data, (int)size));
	const char *text = json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *safe = cj_json_terminal_safe(text);
	FUZZ_CHECK(safe);
	FUZZ_CHECK(terminal_safe(safe, true));

	/* still JSON, and (for valid UTF-8 input) the same JSON */
	json_tokener *tok = json_tokener_new();
	FUZZ_CHECK(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *back = json_tokener_parse_ex(tok, safe, (int)strlen(safe));
	FUZZ_CHECK(back && json_object_is_type(back, json_type_object));
	if (valid_utf8(data, size)) {
		json_object *v = NULL;
		fuzz_accepted++;
		FUZZ_CHECK(json_object_object_get_ex(back, key, &v));
		FUZZ_CHECK((size_t)json_object_get_string_len(v) == size);
		FUZZ_CHECK(memcmp(json_object_get_string(v), data, size) == 0);
	}
	json_object_put(back);
	json_tokener_free(tok);
	free(safe);
	free(key);
	json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	/* the first byte picks the small buffer's size */
	size_t small = size ? data[0] % 64 : 0;
	check_sanitize(data, size, small);
	check_json(data, size);
	return 0;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	static const char *const seeds[] = {
	    "plain text",
	    "\x1b[2J\x1b[H",
	    "\x1b]0;title\x07",
	    "evil\x1b]8;;http://x/\x1b\\link\x1b]8;;\x1b\\",
	    "line\nforged: ctr-jailer: ok\r\n",
	    "del\177 c1-raw\2332J c1-utf8\302\2332J", /* octal: \x9b2 would be one escape */
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e",
	    "bidi \xe2\x80\xaetxt.exe \xe2\x81\xa6 \xe2\x80\xa8",
	    "overlong \xc0\xaf \xe0\x80\xaf surrogate \xed\xa0\x80 big \xf4\x90\x80\x80 \xff",
	    "cut \xe2\x82",
	    "back\\slash \\x1b",
	};

	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
		emit((const uint8_t *)seeds[i], strlen(seeds[i]), ctx);
	emit((const uint8_t *)"nul\0inside\x1b", 11, ctx);
}
