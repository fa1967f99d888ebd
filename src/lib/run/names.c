/* SPDX-License-Identifier: Apache-2.0 */
#include "names.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static const char *const adjectives[] = {
    "amber",  "bold",   "brisk",  "calm",   "clever", "crisp", "dapper", "eager",
    "fabled", "gentle", "glad",   "hardy",  "humble", "jolly", "keen",   "lively",
    "lucid",  "mellow", "nimble", "plucky", "quiet",  "rapid", "serene", "snug",
    "steady", "sunny",  "tidy",   "upbeat", "vivid",  "wary",  "witty",  "zesty",
};

static const char *const nouns[] = {
    "alder",  "badger",  "beacon",  "birch",  "canyon",  "comet",  "delta",   "ember",
    "falcon", "fjord",   "glacier", "harbor", "heron",   "island", "kestrel", "lagoon",
    "lark",   "maple",   "meadow",  "nebula", "otter",   "pebble", "quarry",  "raven",
    "ridge",  "sparrow", "spruce",  "summit", "thistle", "tundra", "willow",  "wren",
};

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

const char *cj_name_invalid(const char *name)
{
	size_t len = strlen(name);

	if (len < 2)
		return "a name has at least two characters";
	if (len > CJ_NAME_MAX)
		return "a name has at most 128 characters";
	if (!name_char(name[0]) || name[0] == '_' || name[0] == '.' || name[0] == '-')
		return "a name starts with a letter or a digit";
	for (size_t i = 1; i < len; i++)
		if (!name_char(name[i]))
			return "a name holds only letters, digits, '_', '.' and '-'";
	return NULL;
}

void cj_name_random(char *buf, size_t len)
{
	uint16_t r[2] = {0, 0};

	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		r[0] = r[1] = 0;
	snprintf(buf, len, "%s_%s", adjectives[r[0] % (sizeof adjectives / sizeof *adjectives)],
	         nouns[r[1] % (sizeof nouns / sizeof *nouns)]);
}
