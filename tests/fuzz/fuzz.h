/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the fuzz targets and the standalone driver. A target defines
 * LLVMFuzzerTestOneInput (the libFuzzer entry point) and fuzz_seeds; the
 * standalone driver (standalone.c) supplies main() when libFuzzer is not
 * available. */
#ifndef CTRJ_TESTS_FUZZ_H
#define CTRJ_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Valid and near-valid inputs to start mutating from: the target calls
 * emit once per seed. */
typedef void (*fuzz_emit_fn)(const uint8_t *data, size_t size, void *ctx);
void fuzz_seeds(fuzz_emit_fn emit, void *ctx);

/* Inputs the target accepted (parsed successfully); for the driver's
 * statistics only. */
extern unsigned long fuzz_accepted;

/* An invariant violation: report and abort, so libFuzzer records a crash
 * and the standalone test fails. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__,  \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
