/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Progress of a long step: a pull, an unpack, a base-image build.
 *
 * The library reports; the front end decides where it goes. Until
 * cj_progress_setup() is called nothing is written (a library user and the
 * tests see silence). With CJ_PROGRESS_TTY the step's line is redrawn in
 * place at most every 100 ms: what, done/total, rate and time left. With
 * CJ_PROGRESS_LINES (stderr is not a terminal) a step that runs longer
 * than a second writes one line once it has (on its first progress after
 * that second, at the latest when it ends) and one when it ends, with its
 * size and rate; a shorter step writes nothing, so quick builds and pulls
 * stay silent. Quiet writes
 * nothing.
 *
 * Several steps may be open at once (concurrent layer downloads): each
 * redraw shows the sum of the open steps of the same kind on one line.
 * cj_progress_add is safe to call from several threads.
 */
#ifndef CJ_PROGRESS_H
#define CJ_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

enum cj_progress_mode {
	CJ_PROGRESS_QUIET,
	CJ_PROGRESS_LINES,
	CJ_PROGRESS_TTY,
};

enum cj_progress_unit {
	CJ_PROGRESS_BYTES,
	CJ_PROGRESS_FILES,
};

/* Where progress goes: fd (usually 2) in mode. Called once by the CLI. */
void cj_progress_setup(int fd, enum cj_progress_mode mode);
/* The mode for fd when the user did not choose: TTY on a terminal, else
 * LINES; QUIET if quiet is set. */
enum cj_progress_mode cj_progress_mode_for(int fd, bool quiet);

struct cj_progress;

/* Open a step. what is a short label ("pull sha256:0123abcd", "unpack",
 * "build base image"); total 0 means unknown. Never fails: returns NULL
 * when there is nowhere to report (and the other calls accept NULL). */
struct cj_progress *cj_progress_start(const char *what, enum cj_progress_unit unit, uint64_t total);
/* n more units are done. */
void cj_progress_add(struct cj_progress *p, uint64_t n);
/* Raise the total (a size learnt late); 0 keeps it unknown. */
void cj_progress_total(struct cj_progress *p, uint64_t total);
/* Close the step; ok false says it failed or was interrupted (the final
 * line says so). Frees p. */
void cj_progress_end(struct cj_progress *p, bool ok);

/* "1.5 MiB", "930 B": for the lines above and for callers' own notices. */
void cj_progress_fmt_size(uint64_t bytes, char *buf, unsigned len);

#endif
