#include "CSlopeCPU.h"
int slope_cpu_isa(void) { return 0; }
void slope_cpu_force_isa(int level) { (void)level; }
void slope_sgemm(int transA, int transB, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                 float alpha, const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                 float beta, float *C, ptrdiff_t ldc, const float *bias) {
  for (ptrdiff_t i = 0; i < M; i++) for (ptrdiff_t j = 0; j < N; j++) {
    float s = 0; for (ptrdiff_t k = 0; k < K; k++) s += (transA ? A[k*lda+i] : A[i*lda+k]) * (transB ? B[j*ldb+k] : B[k*ldb+j]);
    C[i*ldc+j] = alpha*s + (beta == 0 ? 0 : beta*C[i*ldc+j]) + (bias ? bias[j] : 0);
  }
}
void slope_nm_spmm(ptrdiff_t T, ptrdiff_t R, ptrdiff_t K, int n, int m,
                   const float *X, ptrdiff_t ldx, const float *values, const uint8_t *indices,
                   float beta, float *Y, ptrdiff_t ldy, const float *bias) {
  ptrdiff_t slots = K / m * n;
  for (ptrdiff_t t = 0; t < T; t++) for (ptrdiff_t r = 0; r < R; r++) {
    float s = 0; for (ptrdiff_t q = 0; q < slots; q++) s += values[r*slots+q] * X[t*ldx + q/n*m + indices[r*slots+q]];
    Y[t*ldy+r] = s + (beta == 0 ? 0 : beta*Y[t*ldy+r]) + (bias ? bias[r] : 0);
  }
}
