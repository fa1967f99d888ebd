/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Untrusted text on the way to a terminal. Image data (manifests,
 * annotations, config, tar entry names) and what a guest writes in its
 * status record end up in our messages; raw, an ESC or a C1 control in them
 * drives the terminal of whoever reads the output (clear the screen, retitle
 * the window, move the cursor over earlier lines), and a newline forges a
 * line of our own. Every message passes through here before it is printed.
 */
#include "sanitize.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1-4, shortest form, no
 * surrogates, at most U+10FFFF) with its code point, or 0 when the byte
 * at s does not start one. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char b = s[0];
	uint32_t lo = 0x80, hi = 0xbf; /* bounds of the second byte */
	size_t len;

	if (b < 0x80) {
		*cp = b;
		return 1;
	}
	if (b >= 0xc2 && b <= 0xdf) {
		len = 2;
		*cp = b & 0x1f;
	} else if (b >= 0xe0 && b <= 0xef) {
		len = 3;
		*cp = b & 0x0f;
		if (b == 0xe0)
			lo = 0xa0; /* overlong */
		if (b == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (b >= 0xf0 && b <= 0xf4) {
		len = 4;
		*cp = b & 0x07;
		if (b == 0xf0)
			lo = 0x90; /* overlong */
		if (b == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
	} else {
		return 0; /* a continuation byte, C0/C1 lead (overlong), F5-FF */
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		unsigned char c = s[i];
		if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xbf))
			return 0;
		*cp = (*cp << 6) | (c & 0x3f);
	}
	return len;
}

/* Code points that must not reach a terminal as they are: C0 and C1
 * controls and DEL act on it; the line and paragraph separators break
 * lines; the bidirectional controls reorder what is shown, so a message
 * could display other than what it says. */
static bool unsafe_code_point(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t cj_sanitize(const char *in, size_t inlen, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0;

	if (!outlen)
		return 0;
	while (i < inlen) {
		uint32_t cp;
		size_t n = utf8_decode(s + i, inlen - i, &cp);
		if (n && !unsafe_code_point(cp)) {
			if (o + n >= outlen)
				break;
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
			continue;
		}
		/* escaped byte by byte: an unsafe character or an invalid byte */
		if (!n)
			n = 1;
		if (o + 4 * n >= outlen)
			break;
		for (size_t k = 0; k < n; k++, o += 4)
			snprintf(out + o, 5, "\\x%02x", s[i + k]);
		i += n;
	}
	out[o] = '\0';
	return o;
}

char *cj_json_terminal_safe(const char *json)
{
	const unsigned char *s = (const unsigned char *)json;
	size_t inlen = strlen(json), i = 0, o = 0;
	char *out = malloc(inlen * 6 + 1); /* worst case: every byte \uXXXX */

	if (!out)
		return NULL;
	while (i < inlen) {
		uint32_t cp;
		size_t n = utf8_decode(s + i, inlen - i, &cp);
		if (n && (!unsafe_code_point(cp) || cp == '\n' || cp == '\t')) {
			/* json-c escapes the C0 controls inside strings; the
			 * newlines and tabs left are its own layout */
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
			continue;
		}
		/* Such characters occur only inside strings, where the escape
		 * means the same; an invalid byte has no JSON spelling and
		 * becomes U+FFFD, the replacement character. */
		o += (size_t)sprintf(out + o, "\\u%04x", n ? (unsigned)cp : 0xfffdu);
		i += n ? n : 1;
	}
	out[o] = '\0';
	return out;
}
