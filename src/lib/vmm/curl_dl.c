/* SPDX-License-Identifier: Apache-2.0 */
#include "curl_dl.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <string.h>

struct cj_curl_api cj_curl;

int cj_curl_load(struct cj_err *err)
{
	static bool loaded;
	static const char *const names[] = {
	    "curl_easy_init",
	    "curl_easy_setopt",
	    "curl_easy_perform",
	    "curl_easy_getinfo",
	    "curl_easy_cleanup",
	    "curl_easy_strerror",
	    "curl_slist_append",
	    "curl_slist_free_all",
	    "curl_global_init",
	    "curl_global_cleanup",
	    "curl_multi_init",
	    "curl_multi_add_handle",
	    "curl_multi_remove_handle",
	    "curl_multi_perform",
	    "curl_multi_poll",
	    "curl_multi_info_read",
	    "curl_multi_cleanup",
	    "curl_easy_escape",
	    "curl_free",
	};
	void *slots[sizeof names / sizeof names[0]];
	void *lib;

	if (loaded)
		return 0;
	lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return cj_fail(err, 0, "libcurl is needed here (install libcurl4): %s", dlerror());
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (!(slots[i] = dlsym(lib, names[i])))
			return cj_fail(err, 0, "libcurl lacks %s", names[i]);
	}
	_Static_assert(sizeof cj_curl == sizeof slots, "one slot per function");
	memcpy(&cj_curl, slots, sizeof cj_curl);
	loaded = true;
	return 0;
}
