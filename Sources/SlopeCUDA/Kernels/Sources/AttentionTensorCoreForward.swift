extension KernelSources {
    /// The tensor-core attention forward (template; `TensorCoreAttentionKernels` instantiates it per head dimension).
    static let attentionTensorCoreForward = #"""
    // Forward: O = softmax(scale·Q·Kᵀ)·V (each probability dropped as AttentionSizes says, after the row sums took
    // it) and the log-sum-exp. NW warps; each owns MT blocks of 16 query rows
    // (BM = 16·MT·NW rows per block) and walks K/V in tiles of BN keys with an online softmax, the next tile copied
    // in while this one is used. Q's fragments stay
    // in registers, or with Q_SHARED are read from a shared Q tile at every key tile (fewer registers, so larger
    // MT or BN fit). Grid (ceil(tq / BM), hq, batch), 32·NW threads; dynamic shared memory
    // (TensorCoreAttentionKernels.Forward.sharedBytes): K and V tiles twice, then the Q tile. The blocks with the
    // longest causal rows start first.
    template <int D, int NW, int MT, int BN, bool Q_SHARED>
    __device__ void attention_forward_tc(const T* q, const T* k, const T* v, T* o, float* lse, AttentionSizes s) {
        constexpr int THREADS = 32 * NW, BM = 16 * MT * NW, STRIDE = D + 8;
        DYNAMIC_SHARED(smem);
        // Two K tiles, two V tiles, then Q (buffers chosen by offset, not by indexing an array of addresses, which
        // would live in local memory). TILE: one K or V tile's bytes.
        constexpr int TILE = 2 * BN * STRIDE;
        const saddr ks = shared_address(smem), vs = ks + 2 * TILE, qs = vs + 2 * TILE;
        int b = blockIdx.z, h = blockIdx.y, kvh = h / (s.hq / s.hkv);
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
        int firstRow = (gridDim.x - 1 - blockIdx.x) * BM;
        const int qlen = query_rows(s, b), klen = key_rows(s, b);
        const i64 qStart = row_start(s, b, s.tq), kStart = row_start(s, b, s.tk);
        if (firstRow >= qlen) return;  // (a packed sequence shorter than the grid's rows: nothing here)
        unsigned qa[Q_SHARED ? 1 : MT][D / 16][4];
        if constexpr (Q_SHARED) {
            stage_tile<D, BM, THREADS>(qs, q, qStart, qlen, s.hq, h, firstRow);
            commit_copies();
        } else {
            #pragma unroll
            for (int m = 0; m < (Q_SHARED ? 1 : MT); ++m) load_rows<D>(qa[m], q, qStart, qlen, s.hq, h, firstRow + (warp * MT + m) * 16 + g, t);
        }
        float acc[MT][D / 8][4], rowMax[MT][2], rowSum[MT][2];
        clear(acc);
        #pragma unroll
        for (int m = 0; m < MT; ++m) {
            rowMax[m][0] = rowMax[m][1] = neg_inf();
            rowSum[m][0] = rowSum[m][1] = 0.0f;
        }
        const float scaleLog2 = s.scale * LOG2E;  // scores in log2 units: exp(x) = 2^(x·log2 e)
        int offset = s.tk - s.tq, visible = visible_keys(s, b);
        int tiles = key_tiles(s, firstRow + BM - 1, BN, visible);
        auto stage = [&](int j) {
            stage_tile<D, BN, THREADS>(ks + (j & 1) * TILE, k, kStart, klen, s.hkv, kvh, j * BN);
            stage_tile<D, BN, THREADS>(vs + (j & 1) * TILE, v, kStart, klen, s.hkv, kvh, j * BN);
            commit_copies();
        };
        if (tiles > 0) stage(0);
        for (int j = 0; j < tiles; ++j) {
            // Tile j has landed for everyone, and everyone is done with tile j − 1, whose buffer tile j + 1 takes:
            // one barrier per tile.
            wait_copies<0>();
            __syncthreads();
            if (j + 1 < tiles) stage(j + 1);
            const saddr kt = ks + (j & 1) * TILE;
            float sc[MT][BN / 8][4];
            clear(sc);
            #pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {  // S = Q·Kᵀ
                unsigned a[MT][4];
                #pragma unroll
                for (int m = 0; m < MT; ++m) {
                    if constexpr (Q_SHARED) load_a<true>(a[m], qs + 2 * ((warp * MT + m) * 16 * STRIDE + kk * 16), STRIDE, lane);
                    else { a[m][0] = qa[m][kk][0]; a[m][1] = qa[m][kk][1]; a[m][2] = qa[m][kk][2]; a[m][3] = qa[m][kk][3]; }
                }
                mma_step<MT, BN / 8, true>(sc, a, kt + 2 * kk * 16, STRIDE, lane);
            }
            int first = j * BN;
            // Only tiles that reach past the visible keys or past the block's first row on the causal diagonal need a mask.
            bool edge = first + BN > visible || (s.causal && first + BN - 1 > offset + firstRow);
            #pragma unroll
            for (int m = 0; m < MT; ++m) {
                int r0 = firstRow + (warp * MT + m) * 16 + g;
                float tileMax[2] = {neg_inf(), neg_inf()};
                #pragma unroll
                for (int nt = 0; nt < BN / 8; ++nt) {
                    #pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        if (edge) {
                            int key = first + nt * 8 + t * 2 + (e & 1), row = r0 + (e >> 1) * 8;
                            if (key >= visible || (s.causal && key > offset + row)) sc[m][nt][e] = neg_inf();
                        }
                        tileMax[e >> 1] = fmaxf(tileMax[e >> 1], sc[m][nt][e]);
                    }
                }
                #pragma unroll
                for (int half = 0; half < 2; ++half) {
                    float tm = fmaxf(tileMax[half], __shfl_xor_sync(0xffffffffu, tileMax[half], 1));
                    tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, 2));
                    float updated = fmaxf(rowMax[m][half], tm * scaleLog2);  // (scaleLog2 > 0 keeps the order)
                    // A row with nothing visible yet keeps −inf: factors 0 and 1, never NaN.
                    float base = updated == neg_inf() ? 0.0f : updated;
                    float correction = exp2_fast(rowMax[m][half] - base);
                    rowMax[m][half] = updated;
                    float sum = 0.0f;
                    #pragma unroll
                    for (int nt = 0; nt < BN / 8; ++nt) {
                        float p0 = exp2_fast(sc[m][nt][2 * half] * scaleLog2 - base);
                        float p1 = exp2_fast(sc[m][nt][2 * half + 1] * scaleLog2 - base);
                        sum += p0 + p1;
                        if (drops_probabilities(s)) {
                            int row = r0 + half * 8, key = first + nt * 8 + t * 2;
                            p0 *= dropout_factor(s, b, h, row, key);
                            p1 *= dropout_factor(s, b, h, row, key + 1);
                        }
                        sc[m][nt][2 * half] = p0; sc[m][nt][2 * half + 1] = p1;
                    }
                    rowSum[m][half] = rowSum[m][half] * correction + sum;  // per-thread columns; the quad is summed at the end
                    #pragma unroll
                    for (int dt = 0; dt < D / 8; ++dt) { acc[m][dt][2 * half] *= correction; acc[m][dt][2 * half + 1] *= correction; }
                }
            }
            const saddr vt = vs + (j & 1) * TILE;
            #pragma unroll
            for (int kstep = 0; kstep < BN / 16; ++kstep) {  // O += P·V
                unsigned a[MT][4];
                accumulator_fragments(a, sc, kstep);
                mma_step<MT, D / 8, false>(acc, a, vt + 2 * kstep * 16 * STRIDE, STRIDE, lane);
            }
        }
        if (tiles == 0) wait_copies<0>();  // (the Q tile, when no key is visible)
        #pragma unroll
        for (int m = 0; m < MT; ++m) {
            int r0 = firstRow + (warp * MT + m) * 16 + g;
            float inverse[2];
            #pragma unroll
            for (int half = 0; half < 2; ++half) {
                float l = rowSum[m][half];
                l += __shfl_xor_sync(0xffffffffu, l, 1);
                l += __shfl_xor_sync(0xffffffffu, l, 2);
                inverse[half] = l > 0.0f ? 1.0f / l : 0.0f;
                int row = r0 + half * 8;
                if (t == 0 && row < qlen) lse[(qStart + row) * s.hq + h] = (rowMax[m][half] + log2f(l)) / LOG2E;
            }
            store_rows<D, D / 8>(o, acc[m], inverse[0], inverse[1], qStart, qlen, s.hq, h, r0, 0, t);
        }
    }

    """#
}
