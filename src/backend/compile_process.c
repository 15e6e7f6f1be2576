/* compile_process.c: a compiler as a child process (see compile_process.h). */
#include "backend/compile_process.h"
#include "core/error.h"
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

kl_status kl_compile_process_start(kl_backend *b, const char *const *argv, const char *out, const char *hint,
                                   kl_compile_job *job)
{
    snprintf(job->log, sizeof job->log, "%s.log", out);
    if (b->ctx && kl_context_debug(b->ctx) >= 1) {
        fprintf(stderr, "[kiln] command:");
        for (int i = 0; argv[i]; i++) fprintf(stderr, " %s", argv[i]);
        fprintf(stderr, "\n");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, job->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawnp(&job->pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        job->pid = 0;
        return kl_error(KL_ERR_RUNTIME, "cannot run the compiler %s: %s%s", argv[0], strerror(rc), hint ? hint : "");
    }
    return KL_OK;
}

kl_status kl_compile_process_finish(kl_compile_job *job, const char *src, const char *what)
{
    int st;
    while (waitpid(job->pid, &st, 0) < 0) {
        if (errno != EINTR) return kl_error(KL_ERR_RUNTIME, "waiting for the compiler: %s", strerror(errno));
    }
    job->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char msg[3000] = "";
        FILE *f = fopen(job->log, "r");
        if (f) { size_t n = fread(msg, 1, sizeof msg - 1, f); msg[n] = 0; fclose(f); }
        unlink(job->log);
        return kl_error(KL_ERR_RUNTIME, "%s failed (%s %d); source kept at %s; compiler output:\n%s", what,
                        WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                        src, msg);
    }
    unlink(job->log);
    return KL_OK;
}
