#include <stddef.h>
#include <stdint.h>
int slope_cpu_isa(void);
void slope_cpu_force_isa(int level);
void slope_sgemm(int transA, int transB, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                 float alpha, const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                 float beta, float *C, ptrdiff_t ldc, const float *bias);
void slope_nm_spmm(ptrdiff_t T, ptrdiff_t R, ptrdiff_t K, int n, int m,
                   const float *X, ptrdiff_t ldx, const float *values, const uint8_t *indices,
                   float beta, float *Y, ptrdiff_t ldy, const float *bias);
