extension KernelSources {
    /// Fused attention on tensor cores for bf16/fp16 (FlashAttention-2's algorithm) at any head dimension that is a
    /// multiple of 16: the shared pieces here, the forward and backward templates beside this file, and the
    /// instantiations (`TensorCoreAttentionKernels`) after them.
    ///
    /// Every product is `mma.sync.m16n8k16` with fp32 accumulation, its operands read from shared memory with
    /// `ldmatrix` (`.trans` where a tile's rows are the reduction dimension) or taken from registers where an
    /// accumulator already has an A fragment's layout. Tiles are copied to shared memory with `cp.async`, the next
    /// one while this one is used. Shared rows are padded by 16 bytes, which puts the 8 rows an `ldmatrix` reads
    /// in distinct banks.
    static var attentionTensorCore: String {
        "#if defined(ELEMENT_BF16) || defined(ELEMENT_F16)\n" + attentionTensorCoreShared + attentionTensorCoreForward
            + attentionTensorCoreBackward + TensorCoreAttentionKernels.instantiations + "#endif\n"
    }

    static let attentionTensorCoreShared = #"""
    // `lengths`: each batch element's keys beyond which it is padding (an encoder's padded batch), or null. `starts`:
    // with packed rows (AttentionShape.packedRows), batch element b's first row — its lengths[b] queries and keys one
    // after another, no padding between sequences — or null for the [batch·len] layout. Dropout of
    // the probabilities (AttentionShape.dropout): P[b, h, i, j] kept where dropout_keeps(((b·hq + h)·tq + i)·tk + j, seed,
    // threshold) — the CPU's mask — and scaled by kept_scale; threshold 0 with kept_scale 1 drops nothing.
    struct AttentionSizes {
        int batch, tq, tk, hq, hkv, causal; float scale; const int* lengths;
        long long seed; int threshold; float kept_scale; const int* starts;
    };
    #define SIZES_PARAMS int batch, int tq, int tk, int hq, int hkv, int causal, float scale, const int* key_lengths, \
        long long dropout_seed, int dropout_threshold, float dropout_scale, const int* row_starts
    #define SIZES AttentionSizes{batch, tq, tk, hq, hkv, causal, scale, key_lengths, dropout_seed, dropout_threshold, dropout_scale, row_starts}
    // Batch element b's first row of q (or k, v), and its query (key) rows: a packed sequence's own length.
    static __device__ __forceinline__ i64 row_start(const AttentionSizes& s, int b, int len) { return s.starts ? (i64)s.starts[b] : (i64)b * len; }
    static __device__ __forceinline__ int query_rows(const AttentionSizes& s, int b) { return s.starts ? s.lengths[b] : s.tq; }
    static __device__ __forceinline__ int key_rows(const AttentionSizes& s, int b) { return s.starts ? s.lengths[b] : s.tk; }
    // The keys batch element b's queries may see: all tk, or its length when the batch is padded.
    static __device__ __forceinline__ int visible_keys(const AttentionSizes& s, int b) { return s.lengths ? min(s.lengths[b], s.tk) : s.tk; }
    static __device__ __forceinline__ bool drops_probabilities(const AttentionSizes& s) { return s.threshold != 0 || s.kept_scale != 1.0f; }
    // What probability (query, key) of head h, batch element b, is multiplied by: 0 or kept_scale.
    static __device__ __forceinline__ float dropout_factor(const AttentionSizes& s, int b, int h, int query, int key) {
        return dropout_keeps((((i64)b * s.hq + h) * s.tq + query) * s.tk + key, s.seed, s.threshold) ? s.kept_scale : 0.0f;
    }
    typedef unsigned short u16;
    #define LOG2E 1.4426950408889634f

    // PTX helpers: begin (KernelEmulationTests swaps this block for host versions)
    #ifdef ELEMENT_BF16
    #define MMA_TYPE "bf16"
    static __device__ __forceinline__ unsigned pack2(float lo, float hi) {
        unsigned r; asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo)); return r;
    }
    #else
    #define MMA_TYPE "f16"
    static __device__ __forceinline__ unsigned pack2(float lo, float hi) {
        unsigned r; asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo)); return r;
    }
    #endif

    // d[16 × 8] += a[16 × 16] · b[16 × 8] (fragments in PTX's m16n8k16 layout). Not volatile: it touches registers
    // only, so the compiler may move it past the (volatile, ordered) shared-memory loads and interleave the two.
    static __device__ __forceinline__ void mma16816(float* d, const unsigned* a, unsigned b0, unsigned b1) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32." MMA_TYPE "." MMA_TYPE ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }

    // A byte address in the shared window. Tiles are addressed this way (32-bit arithmetic with constant offsets
    // that ptxas folds into the instructions) rather than by generic pointers converted at every access.
    typedef unsigned saddr;
    static __device__ __forceinline__ saddr shared_address(const void* p) {
        unsigned address;
        asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(address) : "l"(p));
        return address;
    }
    // 16 bytes global → shared without passing through registers; zero-fills when !valid.
    static __device__ __forceinline__ void copy16_async(saddr shared, const void* global, bool valid) {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(shared), "l"(global), "r"(valid ? 16 : 0));
    }
    // 4 bytes global → shared (lse and δ rows: no wait for the load where it is issued).
    static __device__ __forceinline__ void copy4_async(saddr shared, const void* global) {
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" :: "r"(shared), "l"(global));
    }
    static __device__ __forceinline__ void commit_copies() { asm volatile("cp.async.commit_group;"); }
    template <int PENDING> static __device__ __forceinline__ void wait_copies() { asm volatile("cp.async.wait_group %0;" :: "n"(PENDING)); }

    // Four 8×8 16-bit matrices; lane l gives the address of row l % 8 of matrix l / 8.
    static __device__ __forceinline__ void load_matrices(unsigned* r, saddr p) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(p));
    }
    static __device__ __forceinline__ void load_matrices_transposed(unsigned* r, saddr p) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(p));
    }
    // Two matrices; lanes 0–15 give the addresses.
    static __device__ __forceinline__ void load_two_matrices(unsigned* r, saddr p) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(p));
    }
    static __device__ __forceinline__ void load_two_matrices_transposed(unsigned* r, saddr p) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(p));
    }
    static __device__ __forceinline__ float exp2_fast(float x) {
        float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y;
    }
    // p[0] += a, p[1] += b atomically: one vector reduction on Hopper, two before it.
    static __device__ __forceinline__ void add_pair_atomically(float* p, float a, float b) {
    #if __CUDA_ARCH__ >= 900
        asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" :: "l"(p), "f"(a), "f"(b) : "memory");
    #else
        atomicAdd(p, a); atomicAdd(p + 1, b);
    #endif
    }
    // PTX helpers: end

    // Starts copying rows [first, first + ROWS) of head `head` of one batch element's `len` rows (from row `start` of a
    // [rows, heads·D] tensor) into `tile` (row stride D + 8) with THREADS threads; rows past `len` become zeros.
    template <int D, int ROWS, int THREADS>
    __device__ __forceinline__ void stage_tile(saddr tile, const T* src, i64 start, int len, int heads, int head, int first) {
        constexpr int CHUNKS = ROWS * (D / 8);
        const u16* base = (const u16*)src + (i64)head * D;
        #pragma unroll
        for (int round = 0; round < (CHUNKS + THREADS - 1) / THREADS; ++round) {
            int e = round * THREADS + threadIdx.x, r = e / (D / 8), c = e % (D / 8), row = first + r;
            if (CHUNKS % THREADS == 0 || e < CHUNKS)
                copy16_async(tile + 2 * (r * (D + 8) + c * 8), base + (start + min(row, len - 1)) * heads * D + c * 8, row < len);
        }
    }

    // Tiles of `tile` keys that query rows up to `lastRow` see (causal rows see keys up to tk − tq + row).
    static __device__ __forceinline__ int key_tiles(const AttentionSizes& s, int lastRow, int tile, int visible) {
        int lastKey = s.causal ? min(visible - 1, s.tk - s.tq + lastRow) : visible - 1;
        return lastKey < 0 ? 0 : lastKey / tile + 1;
    }

    // The A fragment (16 × 16) whose top-left element is at p: stored [M][K] (row m at p + m·stride elements,
    // A_MK) or [K][M] (row k at p + k·stride; the transpose of what is stored).
    template <bool A_MK>
    __device__ __forceinline__ void load_a(unsigned (&a)[4], saddr p, int stride, int lane) {
        const int which = lane >> 3, row = lane & 7;
        if (A_MK) load_matrices(a, p + 2 * (((which & 1) * 8 + row) * stride + (which >> 1) * 8));
        else load_matrices_transposed(a, p + 2 * (((which >> 1) * 8 + row) * stride + (which & 1) * 8));
    }

    // A fragments of k-step ks from accumulators (16 × 8 tiles 2·ks and 2·ks + 1), rounded to 16 bits: a
    // product's result used as the next product's A operand without leaving registers.
    template <int MT, int NT>
    __device__ __forceinline__ void accumulator_fragments(unsigned (&a)[MT][4], const float (&c)[MT][NT][4], int ks) {
        #pragma unroll
        for (int m = 0; m < MT; ++m) {
            a[m][0] = pack2(c[m][2 * ks][0], c[m][2 * ks][1]);
            a[m][1] = pack2(c[m][2 * ks][2], c[m][2 * ks][3]);
            a[m][2] = pack2(c[m][2 * ks + 1][0], c[m][2 * ks + 1][1]);
            a[m][3] = pack2(c[m][2 * ks + 1][2], c[m][2 * ks + 1][3]);
        }
    }

    // One k-step: acc[m][16 × 8·NT] += a[m][16 × 16] · B for MT row blocks, B's 16 × 8·NT block at b, stored [N][K]
    // (column n of B at b + n·stride elements, B_NK) or [K][N] (row k at b + k·stride). Column pairs take one
    // ldmatrix.x4; an odd last column tile an x2.
    template <int MT, int NT, bool B_NK>
    __device__ __forceinline__ void mma_step(float (&acc)[MT][NT][4], const unsigned (&a)[MT][4], saddr b, int stride, int lane) {
        const int which = lane >> 3, row = lane & 7;
        auto load_pair = [&](unsigned* r, int np) {
            if (B_NK) load_matrices(r, b + 2 * ((np * 16 + (which >> 1) * 8 + row) * stride + (which & 1) * 8));
            else load_matrices_transposed(r, b + 2 * (((which & 1) * 8 + row) * stride + np * 16 + (which >> 1) * 8));
        };
        unsigned r[2][4];  // the next pair's fragments load while this pair multiplies
        if (NT >= 2) load_pair(r[0], 0);
        #pragma unroll
        for (int np = 0; np < NT / 2; ++np) {
            if (np + 1 < NT / 2) load_pair(r[(np + 1) & 1], np + 1);
            #pragma unroll
            for (int m = 0; m < MT; ++m) {
                mma16816(acc[m][2 * np], a[m], r[np & 1][0], r[np & 1][1]);
                mma16816(acc[m][2 * np + 1], a[m], r[np & 1][2], r[np & 1][3]);
            }
        }
        if (NT % 2) {
            unsigned r[2];
            if (B_NK) load_two_matrices(r, b + 2 * (((NT - 1) * 8 + row) * stride + (which & 1) * 8));
            else load_two_matrices_transposed(r, b + 2 * (((which & 1) * 8 + row) * stride + (NT - 1) * 8));
            #pragma unroll
            for (int m = 0; m < MT; ++m) mma16816(acc[m][NT - 1], a[m], r[0], r[1]);
        }
    }

    template <int MT, int NT>
    __device__ __forceinline__ void clear(float (&acc)[MT][NT][4]) {
        #pragma unroll
        for (int m = 0; m < MT; ++m) {
            #pragma unroll
            for (int n = 0; n < NT; ++n) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;
        }
    }

    // A-operand fragments of rows r0 and r0 + 8 (clamped to len − 1) of the `len` rows from row `start`, all of D,
    // straight from global memory.
    template <int D>
    __device__ __forceinline__ void load_rows(unsigned (&frag)[D / 16][4], const T* src, i64 start, int len, int heads, int head, int r0, int t) {
        const unsigned* p0 = (const unsigned*)((const u16*)src + (start + min(r0, len - 1)) * heads * D + (i64)head * D);
        const unsigned* p1 = (const unsigned*)((const u16*)src + (start + min(r0 + 8, len - 1)) * heads * D + (i64)head * D);
        #pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            frag[kk][0] = p0[kk * 8 + t]; frag[kk][1] = p1[kk * 8 + t];
            frag[kk][2] = p0[kk * 8 + 4 + t]; frag[kk][3] = p1[kk * 8 + 4 + t];
        }
    }

    // Rows r0 and r0 + 8 (accumulator layout, NT column tiles from column c0) of the `len` rows from row `start` into
    // one head of a [rows, heads·D] tensor, row halves scaled by scale0 and scale1; rows past `len` are not written.
    template <int D, int NT>
    __device__ __forceinline__ void store_rows(T* dst, const float (&acc)[NT][4], float scale0, float scale1, i64 start, int len,
                                               int heads, int head, int r0, int c0, int t) {
        u16* p0 = (u16*)dst + (start + r0) * heads * D + (i64)head * D + c0;
        u16* p1 = p0 + (i64)8 * heads * D;
        #pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
            if (r0 < len) *(unsigned*)(p0 + nt * 8 + t * 2) = pack2(acc[nt][0] * scale0, acc[nt][1] * scale0);
            if (r0 + 8 < len) *(unsigned*)(p1 + nt * 8 + t * 2) = pack2(acc[nt][2] * scale1, acc[nt][3] * scale1);
        }
    }

    // δ = rowsum(dO ⊙ O) per (row, head): LANES lanes (the power of two ≥ D / 8) per row, 16 bytes each, summed
    // with shuffles. Grid-stride over rowHeads · LANES threads.
    template <int D>
    __device__ void attention_delta_tc(const T* dout, const T* out, float* delta, i64 rowHeads) {
        constexpr int LANES = D / 8 <= 8 ? 8 : D / 8 <= 16 ? 16 : 32;
        static_assert(D / 8 <= 32, "at most 32 lanes per row");
        i64 total = rowHeads * LANES, stride = (i64)gridDim.x * blockDim.x;
        i64 rounded = (total + 31) / 32 * 32;  // whole warps stay in the loop together for the shuffles
        for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < rounded; e += stride) {
            float sum = 0.0f;
            i64 row = e / LANES;
            int chunk = (int)(e % LANES);
            if (e < total && chunk < D / 8) {
                uint4 a = ((const uint4*)dout)[row * (D / 8) + chunk], c = ((const uint4*)out)[row * (D / 8) + chunk];
                const T* x = (const T*)&a;
                const T* y = (const T*)&c;
                #pragma unroll
                for (int i = 0; i < 8; ++i) sum += to_float(x[i]) * to_float(y[i]);
            }
            #pragma unroll
            for (int width = LANES / 2; width > 0; width >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, width);
            if (e < total && chunk == 0) delta[row] = sum;
        }
    }

    """#
}
