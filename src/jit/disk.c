/* disk.c: the kernel cache's files: verified artifacts, atomic fsynced
 * writes, per-key compile locks and the sweep of what killed processes left.
 * Nothing here trusts a file it did not check: a truncated, flipped or
 * swapped artifact, or a FIFO or directory where a file should be, is
 * reported as a reason to recompile, never opened blindly. */
#include "jit/disk.h"
#include "core/error.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define META_MAGIC "kiln-artifact 1"
#define MAX_META 2048

static uint64_t hash_bytes(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
    return h;
}

/* Opens path for reading only if it is a regular file (a FIFO must not block). */
static int open_regular(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    return fd;
}

/* Size and content hash of an open file, read to its end. */
static int digest_fd(int fd, uint64_t *size, uint64_t *hash)
{
    unsigned char buf[1 << 14];
    uint64_t h = 0xcbf29ce484222325ULL, n = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) != 0) {
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        h = hash_bytes(h, buf, (size_t)r);
        n += (uint64_t)r;
    }
    *size = n;
    *hash = h;
    return 0;
}

static const char *field(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, key, n) == 0 && p[n] == ' ') return p + n + 1;
    return NULL;
}

/* The value of "key value\n" in text, copied into out. */
static int field_copy(const char *text, const char *key, char *out, size_t size)
{
    const char *v = field(text, key);
    if (!v) return 0;
    size_t n = strcspn(v, "\n");
    if (n >= size) return 0;
    memcpy(out, v, n);
    out[n] = 0;
    return 1;
}

int kl_artifact_verify(const char *so, const char *meta, const char *name, const char *identity,
                       char *why, size_t why_size)
{
    struct stat st;
    int fd = open_regular(meta, &st);
    if (fd < 0) {
        if (errno == ENOENT && access(so, F_OK) != 0) snprintf(why, why_size, "not in the cache");
        else if (errno == ENOENT) snprintf(why, why_size, "its header %s is missing", meta);
        else snprintf(why, why_size, "its header %s is not a readable regular file", meta);
        return 0;
    }
    char text[MAX_META + 1];
    ssize_t got = st.st_size <= MAX_META ? read(fd, text, MAX_META) : -1;
    close(fd);
    if (got <= 0) { snprintf(why, why_size, "its header %s cannot be read", meta); return 0; }
    text[got] = 0;
    char got_name[128], got_identity[600], size_text[32], hash_text[32];
    if (strncmp(text, META_MAGIC "\n", strlen(META_MAGIC) + 1) != 0 ||
        !field_copy(text, "name", got_name, sizeof got_name) ||
        !field_copy(text, "identity", got_identity, sizeof got_identity) ||
        !field_copy(text, "size", size_text, sizeof size_text) ||
        !field_copy(text, "hash", hash_text, sizeof hash_text)) {
        snprintf(why, why_size, "its header %s is damaged", meta);
        return 0;
    }
    if (strcmp(got_name, name) != 0) {
        snprintf(why, why_size, "its header names kernel %s", got_name);
        return 0;
    }
    if (strcmp(got_identity, identity) != 0) {
        snprintf(why, why_size, "it was built by another compiler or with other flags");
        return 0;
    }
    fd = open_regular(so, &st);
    if (fd < 0) {
        snprintf(why, why_size, "%s is %s", so, errno == ENOENT ? "missing" : "not a readable regular file");
        return 0;
    }
    uint64_t size = 0, hash = 0;
    int r = digest_fd(fd, &size, &hash);
    close(fd);
    unsigned long long want_size = strtoull(size_text, NULL, 10), want_hash = strtoull(hash_text, NULL, 16);
    if (r != 0) { snprintf(why, why_size, "%s cannot be read", so); return 0; }
    if (size != want_size) {
        snprintf(why, why_size, "%s has %llu bytes, its header says %llu (truncated?)", so,
                 (unsigned long long)size, want_size);
        return 0;
    }
    if (hash != want_hash) {
        snprintf(why, why_size, "%s's contents do not match its header's hash (damaged?)", so);
        return 0;
    }
    return 1;
}

/* Makes room for a regular file at path: a directory or other non-regular
 * entry there is removed, or renamed aside for the sweep. */
static void clear_blocker(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0 || S_ISREG(st.st_mode)) return;
    if (S_ISDIR(st.st_mode) ? rmdir(path) == 0 : unlink(path) == 0) return;
    char aside[PATH_MAX + 64];
    snprintf(aside, sizeof aside, "%s.stale-%d-%ld", path, (int)getpid(), (long)time(NULL));
    if (rename(path, aside) != 0) { /* the rename that follows reports the failure */ }
}

static kl_status rename_into_place(const char *tmp, const char *path)
{
    if (rename(tmp, path) == 0) return KL_OK;
    clear_blocker(path);
    if (rename(tmp, path) == 0) return KL_OK;
    int e = errno;
    unlink(tmp);
    return kl_error(KL_ERR_RUNTIME, "cannot write %s: %s", path, strerror(e));
}

kl_status kl_disk_write_atomic(const char *path, const char *head, const char *text, const char *tail)
{
    char tmp[PATH_MAX + 512];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return kl_error(KL_ERR_RUNTIME, "cannot write %s: %s", tmp, strerror(errno));
    const char *parts[3] = {head, text, tail};
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++) {
        const char *p = parts[i] ? parts[i] : "";
        size_t n = strlen(p);
        while (n && ok) {
            ssize_t w = write(fd, p, n);
            if (w < 0 && errno == EINTR) continue;
            ok = w > 0;
            if (ok) { p += w; n -= (size_t)w; }
        }
    }
    int e = errno;
    ok = ok && fsync(fd) == 0;
    if (!ok) e = errno;
    ok = (close(fd) == 0) && ok;
    if (!ok) {
        unlink(tmp);
        return kl_error(KL_ERR_RUNTIME, "cannot write %s: %s", path, strerror(e));
    }
    return rename_into_place(tmp, path);
}

kl_status kl_artifact_publish(const char *tmp_so, const char *so, const char *meta, const char *name,
                              const char *identity)
{
    struct stat st;
    int fd = open_regular(tmp_so, &st);
    uint64_t size = 0, hash = 0;
    int ok = fd >= 0 && digest_fd(fd, &size, &hash) == 0 && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) close(fd);
    if (!ok) {
        unlink(tmp_so);
        return kl_error(KL_ERR_RUNTIME, "cannot read the compiled kernel %s: %s", tmp_so, strerror(e));
    }
    KL_TRY(rename_into_place(tmp_so, so));
    char text[MAX_META];
    int n = snprintf(text, sizeof text, META_MAGIC "\nname %s\nsize %llu\nhash %016llx\nidentity %s\n", name,
                     (unsigned long long)size, (unsigned long long)hash, identity);
    if (n < 0 || (size_t)n >= sizeof text) return kl_error(KL_ERR_RUNTIME, "kernel header too long for %s", so);
    return kl_disk_write_atomic(meta, text, NULL, NULL);
}

kl_status kl_disk_mkdirs(const char *dir)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return kl_error(KL_ERR_RUNTIME, "cannot create the kernel cache directory %s: %s", path,
                                strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return kl_error(KL_ERR_RUNTIME, "the kernel cache path %s is not a directory", dir);
    return KL_OK;
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int kl_disk_lock(const char *path, double timeout_s, int *waited)
{
    *waited = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        clear_blocker(path);
        fd = open(path, O_RDWR | O_CREAT | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0644);
    }
    struct stat st;
    if (fd < 0) return -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); return -1; }
    double start = now_seconds();
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
        if (errno != EWOULDBLOCK && errno != EINTR) break;
        *waited = 1;
        if (now_seconds() - start > timeout_s) break;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    close(fd);
    return -1;
}

void kl_disk_unlock(int fd)
{
    if (fd >= 0) close(fd); /* closing drops the flock */
}

/* A "<file>.tmp-<pid>" left by a process that is gone (ten minutes, in case
 * the process runs in another PID namespace), or any temporary over a day old. */
static int stale(const char *name, const struct stat *st, time_t now)
{
    double age = difftime(now, st->st_mtime);
    const char *tmp = strstr(name, ".tmp-");
    if (tmp) {
        long pid = strtol(tmp + 5, NULL, 10);
        int gone = pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
        return age > 86400 || (gone && age > 600);
    }
    if (strstr(name, ".stale-")) return 1;
    const char *dot = strrchr(name, '.');
    return dot && strcmp(dot, ".lock") == 0 && age > 86400;
}

void kl_disk_sweep(const char *dir)
{
    char stamp[PATH_MAX + 16];
    snprintf(stamp, sizeof stamp, "%s/.swept", dir);
    struct stat st;
    time_t now = time(NULL);
    if (stat(stamp, &st) == 0 && difftime(now, st.st_mtime) < 3600) return;
    int fd = open(stamp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0) close(fd); /* other processes skip the sweep for an hour */
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[PATH_MAX + 300];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) != 0 || !stale(e->d_name, &st, now)) continue;
        if (S_ISDIR(st.st_mode)) kl_disk_remove_tree(path);
        else unlink(path);
    }
    closedir(d);
}

void kl_disk_remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[PATH_MAX + 300];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path); /* one level: the caches hold only files */
        }
        closedir(d);
    }
    rmdir(dir);
}
