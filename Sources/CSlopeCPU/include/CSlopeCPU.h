// SIMD CPU kernels for slope's CPU backend. Single-threaded and reentrant: the Swift side splits work
// across threads by calling them on disjoint row ranges. AVX-512 and AVX2 paths are chosen at run time;
// a portable path runs everywhere else.
#ifndef SLOPE_CSLOPECPU_H
#define SLOPE_CSLOPECPU_H

#include <stddef.h>
#include <stdint.h>

// Which SIMD level the kernels use: 0 = portable scalar, 1 = AVX2+FMA, 2 = AVX-512.
int slope_cpu_isa(void);             // the level chosen (best supported, unless forced lower)
void slope_cpu_force_isa(int level); // caps the level (tests compare levels); -1 = automatic

// Row-major GEMM: C[M,N] = alpha * op(A) * op(B) + beta * C, then + bias[N] per row if bias != NULL.
// op(A) is [M,K]: A is stored [M,K] with row stride lda, or [K,M] (transA != 0).
// op(B) is [K,N]: B is stored [K,N] with row stride ldb, or [N,K] (transB != 0).
// beta == 0 means C is write-only (NaN/garbage in C does not leak into the result).
void slope_sgemm(int transA, int transB, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                 float alpha, const float *A, ptrdiff_t lda, const float *B, ptrdiff_t ldb,
                 float beta, float *C, ptrdiff_t ldc, const float *bias);

// N:M-sparse GEMM: Y[T,R] = X[T,K] · Sᵀ + beta * Y, then + bias[R] per row if bias != NULL.
// S [R,K] is N:M along K, stored compressed: values [R, K/m*n] and indices [R, K/m*n] (uint8, each the
// position 0..m-1 inside its group of m); group g of a row owns slots g*n .. g*n+n-1.
// Only n*K/m multiply-adds per output are done. Requires K % m == 0 and 1 <= n <= m <= 8.
void slope_nm_spmm(ptrdiff_t T, ptrdiff_t R, ptrdiff_t K, int n, int m,
                   const float *X, ptrdiff_t ldx, const float *values, const uint8_t *indices,
                   float beta, float *Y, ptrdiff_t ldy, const float *bias);

#endif
