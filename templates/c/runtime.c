/*
 * symgrad's thread pool: the one pool every compiled module's parallel loops run on.
 *
 * The modules are compiled with -fopenmp, so GCC outlines each parallel loop into a function
 * and calls GOMP_parallel; each module defines GOMP_parallel and the few omp_* queries it uses
 * as hidden forwarders to this library (templates/c/helpers.h.j2), so they never bind to
 * another OpenMP runtime in the process (PyTorch's bundled libgomp, loaded first, would
 * otherwise serve them with its own wait policy and thread count).
 *
 * The policy: between loops, workers look for the next one for tens of microseconds and then
 * sleep on a condition variable (no long spinning that starves BLAS or another process on a
 * busy machine); after a compiled call they look for the next call's first loop for
 * SG_RT_LINGER_NS (a call often follows a call, and a sleeping worker woke a tenth of a
 * millisecond or more late, its share of the next loop waited on; libgomp and Eigen's pools
 * spin longer); a loop runs on at most sg_rt_threads threads,
 * the caller being thread 0; a loop started inside a loop runs on the calling thread alone (so
 * nothing waits on itself); a loop asked for while another Python thread's runs waits for it
 * (a team is always the same size, so a sum adds up the same way whoever calls); a forked child starts a fresh pool when it first needs one.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SG_RT_MAX_THREADS 256
#define SG_RT_SPIN 4000                 /* pauses (tens of microseconds) before a wait sleeps */
#ifndef SG_RT_LINGER_NS
#define SG_RT_LINGER_NS 300000          /* after a compiled call, how long workers look for the next */
#endif

typedef void (*sg_rt_fn)(void *);

static int threads = 0;                 /* the team size of a loop; 0 until first asked */
static int started = 0;                 /* workers running (threads - 1 once started) */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;     /* held by the caller of a loop */
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER, done = PTHREAD_COND_INITIALIZER;
static sg_rt_fn job;
static void *job_data;
/* The job's number and its team size in one word (number << SG_RT_TEAM_BITS | team): a worker
   reads both in one load, so it never takes one job's number with another job's team. */
#define SG_RT_TEAM_BITS 9
static unsigned long generation;
static unsigned remaining;
static int sleeping;                    /* workers waiting on `wake` */
static long long resting;               /* when a compiled call returns: the time (ns) at which
                                           workers stop looking for the next call and sleep */

static __thread int my_num = 0, my_team = 1, my_depth = 0;

static int cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void pause_briefly(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Whether a worker that has looked `spin` pauses for the next loop should keep looking: during
   a call for SG_RT_SPIN pauses; after one until its linger time is up (a call often follows a
   call, and waking a sleeping worker costs a tenth of a millisecond or more). */
static int keep_looking(int spin)
{
    const long long until = __atomic_load_n(&resting, __ATOMIC_RELAXED);
    if (!until) return spin < SG_RT_SPIN;
    return (spin & 63) || now_ns() < until;
}

static void *worker(void *arg)
{
    const unsigned id = (unsigned)(uintptr_t)arg;
    unsigned long seen = 0;
    for (;;) {
        /* a loop often follows a loop: look for the next one a little while, then sleep */
        unsigned long now = __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
        for (int spin = 0; now == seen && keep_looking(spin); ++spin) {
            pause_briefly();
            now = __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
        }
        if (now == seen) {
            pthread_mutex_lock(&lock);
            ++sleeping;
            while ((now = __atomic_load_n(&generation, __ATOMIC_ACQUIRE)) == seen)
                pthread_cond_wait(&wake, &lock);
            --sleeping;
            pthread_mutex_unlock(&lock);
        }
        seen = now;
        const unsigned team = (unsigned)(now & ((1UL << SG_RT_TEAM_BITS) - 1));
        if (id >= team) continue;     /* not in this team: job and job_data may change under it */
        my_num = (int)id, my_team = (int)team, my_depth = 1;
        job(job_data);
        my_num = 0, my_team = 1, my_depth = 0;
        if (__atomic_sub_fetch(&remaining, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&lock);
            pthread_cond_signal(&done);
            pthread_mutex_unlock(&lock);
        }
    }
    return NULL;
}

/* Start the workers a team of n needs (under `lock`); returns how many threads it can have. */
static unsigned ensure_workers(unsigned n)
{
    while ((unsigned)started + 1 < n) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int failed = pthread_create(&t, &attr, worker, (void *)(uintptr_t)(started + 1));
        pthread_attr_destroy(&attr);
        if (failed) break;
        pthread_setname_np(t, "symgrad-pool");     /* as `top -H` and /proc show it */
        ++started;
    }
    return (unsigned)started + 1 < n ? (unsigned)started + 1 : n;
}

int sg_rt_get_threads(void)
{
    if (threads <= 0) threads = cpus();
    return threads;
}

void sg_rt_set_threads(int n)
{
    pthread_mutex_lock(&busy);
    threads = n < 1 ? 1 : n > SG_RT_MAX_THREADS ? SG_RT_MAX_THREADS : n;
    pthread_mutex_unlock(&busy);
}

/* GOMP_parallel's contract: run fn(data) on a team of n threads (0: the default), return
   when all have finished. */
void sg_rt_parallel(sg_rt_fn fn, void *data, unsigned n)
{
    const unsigned most = (unsigned)sg_rt_get_threads();
    if (n == 0 || n > most) n = most;
    if (n <= 1 || my_depth > 0) {
        const int num = my_num, team = my_team;
        my_num = 0, my_team = 1, ++my_depth;
        fn(data);
        my_num = num, my_team = team, --my_depth;
        return;
    }
    __atomic_store_n(&resting, 0, __ATOMIC_RELAXED);
    pthread_mutex_lock(&busy);        /* another Python thread's loop: wait for it (the same
                                         team size every time, so sums add up the same way) */
    pthread_mutex_lock(&lock);
    n = ensure_workers(n);
    job = fn, job_data = data;
    __atomic_store_n(&remaining, n - 1, __ATOMIC_RELAXED);
    const unsigned long next = ((generation >> SG_RT_TEAM_BITS) + 1) << SG_RT_TEAM_BITS | n;
    __atomic_store_n(&generation, next, __ATOMIC_RELEASE);     /* publishes the job */
    if (sleeping) pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    my_num = 0, my_team = (int)n, my_depth = 1;
    fn(data);
    my_num = 0, my_team = 1, my_depth = 0;
    for (int spin = 0; __atomic_load_n(&remaining, __ATOMIC_ACQUIRE) && spin < SG_RT_SPIN; ++spin)
        pause_briefly();
    if (__atomic_load_n(&remaining, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&lock);
        while (__atomic_load_n(&remaining, __ATOMIC_ACQUIRE)) pthread_cond_wait(&done, &lock);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_unlock(&busy);
}

static pthread_mutex_t atomic_lock = PTHREAD_MUTEX_INITIALIZER;
void sg_rt_atomic_start(void) { pthread_mutex_lock(&atomic_lock); }
void sg_rt_atomic_end(void) { pthread_mutex_unlock(&atomic_lock); }

/* A compiled call is over: workers looking for a next loop sleep now. */
void sg_rt_rest(void) { __atomic_store_n(&resting, now_ns() + SG_RT_LINGER_NS, __ATOMIC_RELAXED); }

int sg_rt_thread_num(void) { return my_num; }
int sg_rt_num_threads(void) { return my_team; }
int sg_rt_in_parallel(void) { return my_depth > 0; }
int sg_rt_max_threads(void) { return my_depth > 0 ? 1 : sg_rt_get_threads(); }

/* A forked child has only the thread that forked: it starts its own workers when it needs
   them, with fresh locks (another thread may have held them in the parent). */
static void after_fork_in_child(void)
{
    pthread_mutex_init(&lock, NULL);
    pthread_mutex_init(&busy, NULL);
    pthread_mutex_init(&atomic_lock, NULL);
    pthread_cond_init(&wake, NULL);
    pthread_cond_init(&done, NULL);
    started = 0, remaining = 0, sleeping = 0, my_depth = 0, my_num = 0, my_team = 1;
}

__attribute__((constructor)) static void sg_rt_init(void)
{
    pthread_atfork(NULL, NULL, after_fork_in_child);
}
