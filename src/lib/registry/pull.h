/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pulling an image from a registry into the local store (store.h) with
 * libcurl: the manifest (OCI or Docker v2, an index followed to the
 * wanted platform), then the config and the layers, several at once, each
 * checked against its digest and size; an interrupted download stays as
 * <hex>.partial and is resumed with a Range request. Authentication: the
 * Bearer token flow or Basic, with the credentials of auth.h. TLS with the
 * system's CAs plus --cert-dir (docker's certs.d layout); plain HTTP only
 * for the registries named insecure.
 */
#ifndef CJ_REGISTRY_PULL_H
#define CJ_REGISTRY_PULL_H

#include "util/err.h"

#include <signal.h>
#include <stdbool.h>

#define CJ_PULL_PARALLEL 4

struct cj_pull_opts {
	const char *cache_dir;
	const char *platform;                /* "os/arch[/variant]"; NULL: linux/amd64 */
	const char *creds;                   /* --creds USER:PASS */
	const char *env_auth;                /* CTR_JAILER_REGISTRY_AUTH */
	const char *home;                    /* for ~/.docker/config.json */
	const char *docker_config;           /* DOCKER_CONFIG */
	const char *cert_dir;                /* --cert-dir */
	const char *insecure;                /* HOST[:PORT] entries, comma-separated */
	const volatile sig_atomic_t *cancel; /* set from a signal handler: stop */
};

/* What the command line says about pulling (pull and run). */
enum cj_pull_policy { CJ_PULL_MISSING, CJ_PULL_ALWAYS, CJ_PULL_NEVER };
struct cj_pull_settings {
	enum cj_pull_policy policy;        /* run --pull */
	char *platform, *creds, *cert_dir; /* --platform, --creds, --cert-dir */
	char *insecure;                    /* --insecure-registry entries, comma-separated */
	bool quiet;
};
void cj_pull_settings_free(struct cj_pull_settings *s);
/* Options for a pull with these settings; env gives HOME, DOCKER_CONFIG
 * and CTR_JAILER_REGISTRY_AUTH (the strings stay env's and s's). */
void cj_pull_opts_from(const struct cj_pull_settings *s, const char *cache_dir, char **env,
                       struct cj_pull_opts *o);
/* run's image: pull ref when the policy asks (always; missing and not
 * stored). A file form is never pulled; a stored plain name with "never"
 * is fine. */
int cj_pull_for_run(const char *ref, const struct cj_pull_settings *s, const char *cache_dir,
                    char **env, struct cj_err *err);

/* Pull ref into the store; name gets the stored full name, digest the
 * manifest's digest. */
int cj_pull(const char *ref, const struct cj_pull_opts *o, char name[512], char digest[72],
            struct cj_err *err);

/* Is host (HOST[:PORT]) in the comma-separated list? */
bool cj_pull_host_listed(const char *list, const char *host);

#endif
