/* threads.c: how many OpenMP threads the CPU's kernels and libraries get.
 * A parallel region ends at a barrier that waits for its slowest thread, and
 * a thread that shares its core with another busy process gets there a time
 * slice late: on a machine whose cores are taken, every kernel waits for the
 * scheduler. So the count follows the cores other processes leave free:
 * at most every KL_THREADS_SAMPLE seconds, the machine's busy time
 * (/proc/stat) less this process's own (getrusage) says how many cores
 * others used since the last sample, and that many threads are given up.
 * KILN_THREADS=N pins the count (and turns this off). */
#include "backend/cpu/cpu.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define KL_THREADS_SAMPLE 0.1

int kl_cpu_threads_choose(int max, int current, double others)
{
    /* a core counts as taken once others use most of it (0.65 of a core),
     * and as free again once they leave most of it (0.4 of a core), so a
     * sample's noise does not flip the count */
    int was = max - current, taken = others > 0 ? (int)(others + 0.35) : 0;
    if (taken < was && others > was - 0.6) taken = was;
    int n = max - taken;
    return n < 1 ? 1 : n > max ? max : n;
}

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The machine's busy CPU seconds so far (all cores; steal counts: the
 * hypervisor gave the time to someone else). 0 when /proc/stat is unreadable. */
static double machine_busy(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait, &irq,
                   &softirq, &steal);
    fclose(f);
    if (n < 4) return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(user + nice + sys + irq + softirq + steal) / (double)(hz > 0 ? hz : 100);
}

static double own_busy(void)
{
    struct rusage r;
    if (getrusage(RUSAGE_SELF, &r) != 0) return 0;
    return (double)r.ru_utime.tv_sec + (double)r.ru_stime.tv_sec +
           1e-6 * (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

void kl_cpu_threads_init(kl_cpu_threads *t)
{
    t->max = omp_get_max_threads();
    const char *pin = getenv("KILN_THREADS");
    t->pinned = pin && atoi(pin) > 0;
    if (t->pinned) t->max = atoi(pin);
    t->current = t->max;
    t->pid = getpid();
    t->wall = seconds(CLOCK_MONOTONIC);
    t->busy = machine_busy();
    t->self = own_busy();
}

void kl_cpu_threads_apply(kl_cpu_threads *t)
{
    double now = seconds(CLOCK_MONOTONIC_COARSE);
    if (!t->pinned && now - t->wall >= KL_THREADS_SAMPLE) {
        double busy = machine_busy(), self = own_busy(), wall = seconds(CLOCK_MONOTONIC);
        if (busy > 0 && wall > t->wall) {
            t->others = ((busy - t->busy) - (self - t->self)) / (wall - t->wall);
            t->current = kl_cpu_threads_choose(t->max, t->current, t->others);
        }
        t->wall = wall;
        t->busy = busy;
        t->self = self;
    }
    /* the calling thread's count; a forked child keeps the one thread it
     * was given (libgomp cannot start a team there) */
    if (omp_get_max_threads() != t->current && getpid() == t->pid) omp_set_num_threads(t->current);
}
