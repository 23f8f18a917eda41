/* verify: kith_env.verify_many on worker threads (docs/internals/uvnode.md,
 * "Signature checks on two cores").
 *
 * A fixed set of threads waits on a condition variable. verify_many posts
 * the batch (under the mutex), wakes them and then claims jobs itself as
 * well, one at a time from a shared index, until none is left; it returns
 * once every claimed job is done. So the caller's thread is one of the
 * checkers, a batch never waits on a thread that is busy elsewhere, and the
 * jobs array is never touched after verify_many returns. Small batches are
 * checked on the caller's thread alone: waking a thread costs more than one
 * check. */
#include <stdlib.h>

#include <uv.h>

#include "crypto/crypto.h"
#include "uvnode/uvnode.h"

/* Below this many jobs the caller checks them alone. */
#define VERIFY_MIN_SHARED 4

struct kith_verifier {
    uv_mutex_t mu;
    uv_cond_t work; /* a batch was posted, or quit */
    uv_cond_t done; /* the last job of a batch finished */
    kith_sig_job *jobs;
    size_t n, next, finished;
    uint64_t gen; /* batches posted */
    bool quit;
    size_t nthreads;
    uv_thread_t threads[KITH_VERIFIER_MAX_THREADS];
};

/* Claim and check jobs until none is left. Called and returns with mu held. */
static void work_batch(kith_verifier *v)
{
    while (v->next < v->n) {
        kith_sig_job *j = &v->jobs[v->next++];
        uv_mutex_unlock(&v->mu);
        kith_sig_check(j);
        uv_mutex_lock(&v->mu);
        if (++v->finished == v->n)
            uv_cond_signal(&v->done);
    }
}

static void worker(void *arg)
{
    kith_verifier *v = arg;
    uint64_t seen = 0;
    uv_mutex_lock(&v->mu);
    for (;;) {
        while (!v->quit && v->gen == seen)
            uv_cond_wait(&v->work, &v->mu);
        if (v->quit)
            break;
        seen = v->gen;
        work_batch(v);
    }
    uv_mutex_unlock(&v->mu);
}

static void verify_many(void *ctx, kith_sig_job *jobs, size_t n)
{
    kith_verifier *v = ctx;
    if (n < VERIFY_MIN_SHARED || !v->nthreads) {
        for (size_t i = 0; i < n; i++)
            kith_sig_check(&jobs[i]);
        return;
    }
    uv_mutex_lock(&v->mu);
    v->jobs = jobs;
    v->n = n;
    v->next = v->finished = 0;
    v->gen++;
    uv_cond_broadcast(&v->work);
    work_batch(v);
    while (v->finished < v->n)
        uv_cond_wait(&v->done, &v->mu);
    v->jobs = NULL;
    v->n = v->next = v->finished = 0;
    uv_mutex_unlock(&v->mu);
}

int kith_verifier_new(size_t threads, kith_verifier **out)
{
    *out = NULL;
    if (threads == 0) {
        unsigned cpus = uv_available_parallelism();
        threads = cpus > 1 ? cpus - 1 : 0;
    }
    if (threads > KITH_VERIFIER_MAX_THREADS)
        threads = KITH_VERIFIER_MAX_THREADS;
    kith_verifier *v = calloc(1, sizeof *v);
    if (!v)
        return KITH_ENOMEM;
    if (uv_mutex_init(&v->mu) != 0) {
        free(v);
        return KITH_EIO;
    }
    if (uv_cond_init(&v->work) != 0) {
        uv_mutex_destroy(&v->mu);
        free(v);
        return KITH_EIO;
    }
    if (uv_cond_init(&v->done) != 0) {
        uv_cond_destroy(&v->work);
        uv_mutex_destroy(&v->mu);
        free(v);
        return KITH_EIO;
    }
    /* Ed25519 needs little stack; don't reserve 8 MiB per thread. */
    uv_thread_options_t opt = { .flags = UV_THREAD_HAS_STACK_SIZE, .stack_size = 256u << 10 };
    for (size_t i = 0; i < threads; i++) {
        if (uv_thread_create_ex(&v->threads[i], &opt, worker, v) != 0)
            break; /* fewer threads: the caller checks the rest */
        v->nthreads++;
    }
    *out = v;
    return 0;
}

size_t kith_verifier_threads(const kith_verifier *v)
{
    return v ? v->nthreads : 0;
}

void kith_verifier_install(kith_verifier *v, kith_env *env)
{
    if (!v || !v->nthreads)
        return; /* one CPU: the node's own one-by-one checks are best */
    env->verify_many = verify_many;
    env->verify_ctx = v;
}

void kith_verifier_free(kith_verifier *v)
{
    if (!v)
        return;
    uv_mutex_lock(&v->mu);
    v->quit = true;
    uv_cond_broadcast(&v->work);
    uv_mutex_unlock(&v->mu);
    for (size_t i = 0; i < v->nthreads; i++)
        uv_thread_join(&v->threads[i]);
    uv_cond_destroy(&v->done);
    uv_cond_destroy(&v->work);
    uv_mutex_destroy(&v->mu);
    free(v);
}
