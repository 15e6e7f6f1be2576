/* disk.h: the on-disk kernel cache's files. An artifact (<name>.so) is
 * trusted only when the header beside it (<name>.meta: size, content hash,
 * compiler identity) matches it; files are fsynced before they are renamed
 * into place; a per-key lock file (flock) keeps concurrent processes from
 * compiling the same kernel, with a timeout so nothing waits forever. */
#ifndef KL_DISK_H
#define KL_DISK_H

#include "kiln.h"
#include <stddef.h>

/* Checks <so> against <meta>: both regular files, meta naming `name` and
 * `identity`, size and content hash equal. 1 when it can be loaded; else 0
 * with the reason in why (a missing artifact says "not in the cache"). */
int kl_artifact_verify(const char *so, const char *meta, const char *name, const char *identity,
                       char *why, size_t why_size);

/* Publishes a compiled artifact: fsyncs tmp_so, renames it to so, then
 * writes meta (atomically) describing it. Entries that are not regular files
 * (a directory, a FIFO) are moved out of the way first. */
kl_status kl_artifact_publish(const char *tmp_so, const char *so, const char *meta, const char *name,
                              const char *identity);

/* head + text + tail written to path via a fsynced temporary and a rename. */
kl_status kl_disk_write_atomic(const char *path, const char *head, const char *text, const char *tail);

/* Creates dir and its parents. */
kl_status kl_disk_mkdirs(const char *dir);

/* Takes the lock file `path` (flock), waiting at most timeout_s seconds for
 * another process that holds it. Returns the descriptor, or -1 when it timed
 * out or the lock cannot be made (the caller compiles anyway). *waited says
 * whether another process held it. */
int kl_disk_lock(const char *path, double timeout_s, int *waited);
void kl_disk_unlock(int fd);

/* Removes temporaries left by killed processes (<file>.tmp-<pid> whose
 * process is gone, or any older than a day) and entries moved aside; at most
 * once an hour per directory (a .swept stamp). */
void kl_disk_sweep(const char *dir);

/* Removes dir and the files in it (a private fallback cache). */
void kl_disk_remove_tree(const char *dir);

#endif
