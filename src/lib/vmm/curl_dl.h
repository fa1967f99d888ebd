/* SPDX-License-Identifier: Apache-2.0 */
/* libcurl, loaded on first use. Only the Firecracker backend and `pull` talk HTTP;
 * linking libcurl (and the TLS stack it drags in) into every run would
 * triple ctr-jailer's resident memory for nothing on the QEMU path.
 * Include this instead of <curl/curl.h>: the curl_* names below then call
 * through the table that cj_curl_load() fills. */
#ifndef CJ_CURL_DL_H
#define CJ_CURL_DL_H

#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "util/err.h"

struct cj_curl_api {
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	/* the registry client's concurrent downloads */
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_perform)(CURLM *, int *);
	CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned, int, int *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_cleanup)(CURLM *);
	char *(*easy_escape)(CURL *, const char *, int);
	void (*free_fn)(void *);
};

extern struct cj_curl_api cj_curl;

/* Load libcurl.so.4 once; a clear error when it is not installed. */
int cj_curl_load(struct cj_err *err);

/* curl.h may define some of these as function-like macros already */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_easy_init           cj_curl.easy_init
#define curl_easy_setopt         cj_curl.easy_setopt
#define curl_easy_perform        cj_curl.easy_perform
#define curl_easy_getinfo        cj_curl.easy_getinfo
#define curl_easy_cleanup        cj_curl.easy_cleanup
#define curl_easy_strerror       cj_curl.easy_strerror
#define curl_slist_append        cj_curl.slist_append
#define curl_slist_free_all      cj_curl.slist_free_all
#define curl_global_init         cj_curl.global_init
#define curl_global_cleanup      cj_curl.global_cleanup
#define curl_multi_init          cj_curl.multi_init
#define curl_multi_add_handle    cj_curl.multi_add_handle
#define curl_multi_remove_handle cj_curl.multi_remove_handle
#define curl_multi_perform       cj_curl.multi_perform
#define curl_multi_poll          cj_curl.multi_poll
#define curl_multi_info_read     cj_curl.multi_info_read
#define curl_multi_cleanup       cj_curl.multi_cleanup
#define curl_easy_escape         cj_curl.easy_escape
#define curl_free                cj_curl.free_fn

#endif
