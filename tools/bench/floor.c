/* bench_floor: the crypto floor of receiving one message, measured with
 * libsodium directly (tools/bench runs it in the same run as the nodes).
 *
 * A kith receiver must, per new message, at least: hash the envelope to get
 * its id (BLAKE2b-256), open the envelope (XChaCha20-Poly1305) and verify
 * the author's signature over the inner message (Ed25519). Nothing a node
 * does can be cheaper than that, so the bench divides a node's measured CPU
 * per delivered message by this figure. The sizes follow a ~400-byte
 * envelope carrying a 200-byte text: the AEAD input is the envelope minus
 * its header, the signed input the plaintext minus the signature.
 *
 * usage: bench_floor [ITERATIONS] [ENVELOPE_BYTES]
 * prints one JSON object on one line (CPU microseconds per operation, the
 * median of several rounds, so one noisy round does not decide it). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS 7
#define HEADER_LEN 64 /* version, room tag, epoch, nonce and framing */
#define AD_LEN 64
#define MAX_ENVELOPE 4096

/* CPU time, not wall time: the node's receive cost is measured as CPU time
 * too (utime + stime), and a busy machine would inflate wall time. */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* Keeps the compiler from dropping work whose result is otherwise unused. */
static volatile unsigned sink;

int main(int argc, char **argv)
{
    long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    long env_len = argc > 2 ? strtol(argv[2], NULL, 10) : 400;
    if (iters < 1 || iters > 100000000 || env_len < HEADER_LEN + 128 || env_len > MAX_ENVELOPE) {
        fprintf(stderr, "usage: bench_floor [ITERATIONS 1..1e8] [ENVELOPE_BYTES 192..4096]\n");
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "bench_floor: sodium_init failed\n");
        return 1;
    }
    static unsigned char envelope[MAX_ENVELOPE], plain[MAX_ENVELOPE], out[MAX_ENVELOPE];
    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES], ad[AD_LEN];
    unsigned char sig[crypto_sign_BYTES], id[32];

    /* A realistic envelope: signed inner message, sealed, behind a header. */
    size_t ct_len = (size_t)env_len - HEADER_LEN;
    size_t plain_len = ct_len - crypto_aead_xchacha20poly1305_ietf_ABYTES;
    size_t signed_len = plain_len - crypto_sign_BYTES;
    randombytes_buf(plain, plain_len);
    randombytes_buf(key, sizeof key);
    randombytes_buf(nonce, sizeof nonce);
    randombytes_buf(ad, sizeof ad);
    crypto_sign_keypair(pk, sk);
    crypto_sign_detached(sig, NULL, plain, signed_len, sk);
    memcpy(plain + signed_len, sig, sizeof sig);
    randombytes_buf(envelope, HEADER_LEN);
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        envelope + HEADER_LEN, NULL, plain, plain_len, ad, sizeof ad, NULL, nonce, key);

    double t_hash[ROUNDS], t_open[ROUNDS], t_verify[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_us();
        for (long i = 0; i < iters; i++) {
            crypto_generichash(id, sizeof id, envelope, (size_t)env_len, NULL, 0);
            sink += id[0];
        }
        double t1 = now_us();
        for (long i = 0; i < iters; i++) {
            unsigned long long olen = 0;
            if (crypto_aead_xchacha20poly1305_ietf_decrypt(
                    out, &olen, NULL, envelope + HEADER_LEN, ct_len, ad, sizeof ad, nonce, key)
                != 0) {
                fprintf(stderr, "bench_floor: open failed\n");
                return 1;
            }
            sink += out[0];
        }
        double t2 = now_us();
        /* Verification is ~20x the others: fewer iterations, same precision. */
        long viters = iters / 8 > 0 ? iters / 8 : 1;
        for (long i = 0; i < viters; i++) {
            if (crypto_sign_verify_detached(out + signed_len, out, signed_len, pk) != 0) {
                fprintf(stderr, "bench_floor: verify failed\n");
                return 1;
            }
        }
        double t3 = now_us();
        t_hash[r] = (t1 - t0) / (double)iters;
        t_open[r] = (t2 - t1) / (double)iters;
        t_verify[r] = (t3 - t2) / (double)viters;
    }
    double h = median(t_hash, ROUNDS), o = median(t_open, ROUNDS), v = median(t_verify, ROUNDS);
    printf("{\"envelope_bytes\":%ld,\"iterations\":%ld,\"rounds\":%d,\"hash_us\":%.3f,"
           "\"open_us\":%.3f,\"verify_us\":%.3f,\"floor_us\":%.3f,\"sodium\":\"%s\"}\n",
        env_len, iters, ROUNDS, h, o, v, h + o + v, sodium_version_string());
    return 0;
}
