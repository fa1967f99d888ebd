/* SPDX-License-Identifier: Apache-2.0 */
/* Run names: docker's rule (a letter or digit, then letters, digits, '_',
 * '.' or '-'; at least two characters) and random ones, adjective_noun. */
#ifndef CJ_NAMES_H
#define CJ_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define CJ_NAME_MAX 128

/* NULL when name is a valid run name, else what is wrong with it. */
const char *cj_name_invalid(const char *name);
/* A random name such as "brisk_heron" into buf. */
void cj_name_random(char *buf, size_t len);

#endif
