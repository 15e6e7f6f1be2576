/* compile_process.h: a compiler run as a child process, for backends whose
 * compiler is a program (the CPU's cc, the CUDA emulator's c++): started
 * with its output going to <out>.log, waited for, and a failure reported
 * with the kept source's path and what the compiler printed. */
#ifndef KL_COMPILE_PROCESS_H
#define KL_COMPILE_PROCESS_H

#include "backend/backend.h"

/* Starts argv (argv[0] looked up on PATH when it has no '/') for b, which
 * prints the command when b's context debugs; hint, when not NULL, ends the
 * message of a compiler that cannot be run. */
kl_status kl_compile_process_start(kl_backend *b, const char *const *argv, const char *out, const char *hint,
                                   kl_compile_job *job);
/* Waits for it; a failure is "<what> failed (exit status N); source kept
 * at <src>; compiler output: ...". */
kl_status kl_compile_process_finish(kl_compile_job *job, const char *src, const char *what);

#endif
