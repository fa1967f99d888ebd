/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CJ_SANITIZE_H
#define CJ_SANITIZE_H

#include <stddef.h>

/* Copy inlen bytes of untrusted text into out so that it cannot drive a
 * terminal: C0 controls (newline and tab too), DEL, C1 controls, the line
 * and paragraph separators, bidirectional controls and every byte that is
 * not part of valid UTF-8 become \xNN (a character as the bytes of its
 * encoding); valid printable UTF-8 is kept, the backslash included. out is
 * NUL-terminated (when outlen > 0) and cut at a character boundary when it
 * is too small (4 * inlen + 1 always suffices). Returns strlen(out). */
size_t cj_sanitize(const char *in, size_t inlen, char *out, size_t outlen);

/* JSON text (json-c's output) made safe for a terminal without changing
 * what it means: the characters above that json-c leaves raw inside
 * strings (DEL, C1 controls, separators, bidirectional controls) become
 * \uXXXX escapes, a byte that is not valid UTF-8 becomes \ufffd. Returns a
 * new string (caller frees) or NULL when out of memory. */
char *cj_json_terminal_safe(const char *json);

#endif
