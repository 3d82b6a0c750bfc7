// Cache-blocked single-precision GEMM in the GotoBLAS/BLIS style: op(B) is packed in KC×NR slivers that stay
// in L2, op(A) in MR×KC slivers that stay in L1, and a register-blocked micro-kernel computes MR×NR tiles.
// Packing absorbs the transposes, so one micro-kernel serves all four cases.
#include "CSlopeCPU.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { MR = 6, NR_MAX = 32, KC = 256, MC = 144, NC = 3072 };

// The micro-kernel's width: 32 columns (two zmm) for AVX-512, 16 (two ymm) for AVX2, 16 for the portable path.
static int panel_width(int isa) { return isa == 2 ? 32 : 16; }

// Packs op(A)[i0 : i0+mc, p0 : p0+kc] into MR-row slivers, each stored k-major: buf[sliver][p][r] (zero padded).
static void pack_a(int transA, const float *A, ptrdiff_t lda, ptrdiff_t i0, ptrdiff_t mc, ptrdiff_t p0, ptrdiff_t kc, float *buf) {
    for (ptrdiff_t s = 0; s < mc; s += MR) {
        ptrdiff_t rows = mc - s < MR ? mc - s : MR;
        for (ptrdiff_t p = 0; p < kc; p++) {
            for (ptrdiff_t r = 0; r < MR; r++) {
                ptrdiff_t i = i0 + s + r, k = p0 + p;
                *buf++ = r < rows ? (transA ? A[k * lda + i] : A[i * lda + k]) : 0.0f;
            }
        }
    }
}

// Packs op(B)[p0 : p0+kc, j0 : j0+nc] into nr-column slivers, each stored k-major: buf[sliver][p][c] (zero padded).
static void pack_b(int transB, const float *B, ptrdiff_t ldb, ptrdiff_t p0, ptrdiff_t kc, ptrdiff_t j0, ptrdiff_t nc, int nr, float *buf) {
    for (ptrdiff_t s = 0; s < nc; s += nr) {
        ptrdiff_t cols = nc - s < nr ? nc - s : nr;
        for (ptrdiff_t p = 0; p < kc; p++) {
            ptrdiff_t k = p0 + p;
            if (!transB && cols == nr) {
                memcpy(buf, B + k * ldb + j0 + s, sizeof(float) * (size_t)nr);
                buf += nr;
                continue;
            }
            for (ptrdiff_t c = 0; c < nr; c++) {
                ptrdiff_t j = j0 + s + c;
                *buf++ = c < cols ? (transB ? B[j * ldb + k] : B[k * ldb + j]) : 0.0f;
            }
        }
    }
}

// Writes an MR×nr accumulator tile (row-major in acc) into C: C = alpha·acc + beta·C, only the valid rows × cols.
static void store_tile(const float *acc, int nr, float *C, ptrdiff_t ldc, ptrdiff_t rows, ptrdiff_t cols, float alpha, float beta) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *c = C + r * ldc;
        const float *a = acc + r * nr;
        if (beta == 0.0f) {
            for (ptrdiff_t j = 0; j < cols; j++) c[j] = alpha * a[j];
        } else {
            for (ptrdiff_t j = 0; j < cols; j++) c[j] = alpha * a[j] + beta * c[j];
        }
    }
}

// Portable micro-kernel: acc[MR][16] = Σ_p a[p][r]·b[p][c].
static void kernel_portable(ptrdiff_t kc, const float *a, const float *b, float *acc) {
    float t[MR * 16] = {0};
    for (ptrdiff_t p = 0; p < kc; p++) {
        for (int r = 0; r < MR; r++) {
            float ar = a[p * MR + r];
            for (int c = 0; c < 16; c++) t[r * 16 + c] += ar * b[p * 16 + c];
        }
    }
    memcpy(acc, t, sizeof t);
}

#if defined(__x86_64__)
// AVX2 micro-kernel: 6×16 tile in 12 ymm accumulators.
__attribute__((target("avx2,fma")))
static void kernel_avx2(ptrdiff_t kc, const float *a, const float *b, float *acc) {
    __m256 c[MR][2];
    for (int r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm256_setzero_ps();
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b + p * 16), b1 = _mm256_loadu_ps(b + p * 16 + 8);
        for (int r = 0; r < MR; r++) {
            __m256 ar = _mm256_broadcast_ss(a + p * MR + r);
            c[r][0] = _mm256_fmadd_ps(ar, b0, c[r][0]);
            c[r][1] = _mm256_fmadd_ps(ar, b1, c[r][1]);
        }
    }
    for (int r = 0; r < MR; r++) {
        _mm256_storeu_ps(acc + r * 16, c[r][0]);
        _mm256_storeu_ps(acc + r * 16 + 8, c[r][1]);
    }
}

// AVX-512 micro-kernel: 6×32 tile in 12 zmm accumulators (two FMA ports, 4-cycle latency: 12 chains keep both busy).
__attribute__((target("avx512f,avx512vl,fma")))
static void kernel_avx512(ptrdiff_t kc, const float *a, const float *b, float *acc) {
    __m512 c[MR][2];
    for (int r = 0; r < MR; r++) c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (ptrdiff_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_loadu_ps(b + p * 32), b1 = _mm512_loadu_ps(b + p * 32 + 16);
        for (int r = 0; r < MR; r++) {
            __m512 ar = _mm512_set1_ps(a[p * MR + r]);
            c[r][0] = _mm512_fmadd_ps(ar, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(ar, b1, c[r][1]);
        }
    }
    for (int r = 0; r < MR; r++) {
        _mm512_storeu_ps(acc + r * 32, c[r][0]);
        _mm512_storeu_ps(acc + r * 32 + 16, c[r][1]);
    }
}
#endif

static void micro_kernel(int isa, ptrdiff_t kc, const float *a, const float *b, float *acc) {
#if defined(__x86_64__)
    if (isa == 2) { kernel_avx512(kc, a, b, acc); return; }
    if (isa == 1) { kernel_avx2(kc, a, b, acc); return; }
#endif
    (void)isa;
    kernel_portable(kc, a, b, acc);
}

void slope_sgemm(int transA, int transB, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                 float alpha, const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                 float beta, float *C, ptrdiff_t ldc, const float *bias) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {  // no product: C = beta·C
        for (ptrdiff_t i = 0; i < M; i++)
            for (ptrdiff_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    } else {
        int isa = slope_cpu_isa();
        int nr = panel_width(isa);
        float *packedB = aligned_alloc(64, sizeof(float) * (size_t)KC * (NC + NR_MAX));
        float *packedA = aligned_alloc(64, sizeof(float) * (size_t)KC * (MC + MR));
        float acc[MR * NR_MAX] __attribute__((aligned(64)));
        for (ptrdiff_t j0 = 0; j0 < N; j0 += NC) {
            ptrdiff_t nc = N - j0 < NC ? N - j0 : NC;
            for (ptrdiff_t p0 = 0; p0 < K; p0 += KC) {
                ptrdiff_t kc = K - p0 < KC ? K - p0 : KC;
                float blockBeta = p0 == 0 ? beta : 1.0f;  // later K blocks add to what the first wrote
                pack_b(transB, B, ldb, p0, kc, j0, nc, nr, packedB);
                for (ptrdiff_t i0 = 0; i0 < M; i0 += MC) {
                    ptrdiff_t mc = M - i0 < MC ? M - i0 : MC;
                    pack_a(transA, A, lda, i0, mc, p0, kc, packedA);
                    for (ptrdiff_t js = 0; js < nc; js += nr) {
                        for (ptrdiff_t is = 0; is < mc; is += MR) {
                            micro_kernel(isa, kc, packedA + is * kc, packedB + js * kc, acc);
                            ptrdiff_t rows = mc - is < MR ? mc - is : MR, cols = nc - js < nr ? nc - js : nr;
                            store_tile(acc, nr, C + (i0 + is) * ldc + j0 + js, ldc, rows, cols, alpha, blockBeta);
                        }
                    }
                }
            }
        }
        free(packedA);
        free(packedB);
    }
    if (bias) {
        for (ptrdiff_t i = 0; i < M; i++)
            for (ptrdiff_t j = 0; j < N; j++) C[i * ldc + j] += bias[j];
    }
}
