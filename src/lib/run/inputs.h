/* SPDX-License-Identifier: Apache-2.0 */
/* The pipeline's first stage: what the spec names and the run must read
 * (env files, secret files, the image), and the causes that can be told
 * before booting (privilege, kernel, missing command). */
#ifndef CJ_INPUTS_H
#define CJ_INPUTS_H

#include "spec/spec.h"
#include "util/err.h"

/* Read the inputs into spec: --env-file (between passthrough and -e),
 * NAME=@FILE secrets, the image (opened, digests verified) and its config
 * under the command line, the seed's data drive. */
int cj_inputs_read(struct cj_spec *spec, struct cj_err *err);
/* The stage: privilege, then cj_inputs_read, then the other checks. */
int cj_inputs_load(struct cj_spec *spec, struct cj_err *err);

#endif
