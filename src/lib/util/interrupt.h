/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A stop signal (SIGINT, SIGTERM, SIGHUP) while a run builds its images:
 * caught instead of killing the process, so the step that is building
 * (an unpack, a tree walk, mke2fs) stops at its next check, removes its
 * temporary files and lets go of its locks, and the run ends with 128+N.
 * A helper on the same terminal (mke2fs) gets Ctrl-C itself and stops; one
 * signalled alone runs to its end, and what it made is removed then.
 */
#ifndef CJ_INTERRUPT_H
#define CJ_INTERRUPT_H

#include <signal.h>

/* Catch the stop signals from now on (no SA_RESTART: a wait returns). */
void cj_interrupt_catch(void);
/* Their default action again (a caught one stays recorded). */
void cj_interrupt_release(void);
/* The stop signal caught since cj_interrupt_catch, or 0. */
int cj_interrupted(void);
/* The same as a flag a loop may poll (a pull's cancel). */
const volatile sig_atomic_t *cj_interrupt_flag(void);

#endif
