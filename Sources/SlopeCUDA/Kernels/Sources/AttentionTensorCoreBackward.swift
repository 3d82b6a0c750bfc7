extension KernelSources {
    /// The tensor-core attention backward (template; `TensorCoreAttentionKernels` instantiates it per head dimension).
    static let attentionTensorCoreBackward = #"""
    // Backward: a block owns BN = 16·NW/SPLIT keys of one KV head and walks the query tiles (QT rows, of every query
    // head in its group) that see them, the next tile copied in while this one is used. Per tile, five products as
    // in FlashAttention-2:
    //   Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ   each warp 16 keys × QT/SPLIT queries;
    //   Pᵀ = exp(scale·Sᵀ − lse), dSᵀ = Pᵀ ⊙ (Zᵀ ⊙ dPᵀ − δ)·scale, dSᵀ (and with SPLIT 2, Pᵀ ⊙ Zᵀ) written to shared
    //   memory, Z the dropout factors (1 without dropout);
    //   dV += (Pᵀ ⊙ Zᵀ)·dO, dK += dSᵀ·Q   each warp its 16 keys × D/SPLIT columns, accumulated in registers;
    //   dQ += dS·K                 the warps split QT × D, added to a float32 dQ (dq_accum) with atomics.
    // With SPLIT 1 a warp's Pᵀ and dSᵀ are already the A operands of dV and dK; SPLIT 2 halves the dK/dV registers
    // per warp (large D) by sharing each warp's 16 keys with a second warp. Grid (ceil(tk / BN), hkv, batch),
    // 32·NW threads; dynamic shared memory (TensorCoreAttentionKernels.Backward.sharedBytes): K and V tiles, Q and
    // dO tiles twice, dSᵀ (and Pᵀ), lse and δ twice. The blocks of the first keys, which the most queries see,
    // start first.
    template <int D, int NW, int QT, int SPLIT>
    __device__ void attention_backward_tc(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* delta,
                                          float* dq_accum, T* dk, T* dv, AttentionSizes s) {
        constexpr int THREADS = 32 * NW, KW = NW / SPLIT, BN = 16 * KW, QW = QT / SPLIT, DW = D / SPLIT;
        constexpr int STRIDE = D + 8, SSTRIDE = QT + 8;
        constexpr int QROWS = QT / 16, DQG = NW / QROWS, DQW = D / DQG;  // dQ: QROWS row tiles × DQG column groups
        static_assert(NW % SPLIT == 0 && QW % 16 == 0 && DW % 8 == 0, "each warp: 16 keys, whole k-steps of queries");
        static_assert(NW % QROWS == 0 && D % (8 * DQG) == 0, "dQ: one 16-row tile per warp, whole column tiles");
        DYNAMIC_SHARED(smem);
        // Byte addresses in the shared window; double buffers are chosen by offset (buffer · size), not by indexing
        // arrays of addresses (local memory). dSᵀ and Pᵀ are also written, lse and δ read, through pointers.
        constexpr int KV_TILE = 2 * BN * STRIDE, Q_TILE = 2 * QT * STRIDE, S_TILE = 2 * BN * SSTRIDE;
        const saddr kt = shared_address(smem), vt = kt + KV_TILE, qs = vt + KV_TILE, gs = qs + 2 * Q_TILE, dst = gs + 2 * Q_TILE;
        const saddr pst = dst + S_TILE;  // Pᵀ [BN][QT], with SPLIT 2
        u16* const dsPointer = (u16*)(smem + 2 * KV_TILE + 4 * Q_TILE);  // dSᵀ [BN][QT]
        u16* const psPointer = dsPointer + BN * SSTRIDE;
        const saddr lses = dst + (SPLIT > 1 ? 2 : 1) * S_TILE, deltas = lses + 2 * 4 * QT;  // two of QT floats each
        const float* const lsePointer = (const float*)(smem + 2 * KV_TILE + 4 * Q_TILE + (SPLIT > 1 ? 2 : 1) * S_TILE);
        const float* const deltaPointer = lsePointer + 2 * QT;
        int b = blockIdx.z, kvh = blockIdx.y, group = s.hq / s.hkv;
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
        int kw = warp % KW, part = warp / KW;             // the warp's 16 keys; its part of the queries (Sᵀ) and of D (dK, dV)
        int qrow = warp % QROWS, dgroup = warp / QROWS;   // the warp's dQ rows and columns
        int firstKey = blockIdx.x * BN, key0 = firstKey + kw * 16 + g;
        const int qlen = query_rows(s, b), klen = key_rows(s, b);
        const i64 qStart = row_start(s, b, s.tq), kStart = row_start(s, b, s.tk);
        if (firstKey >= klen) return;  // (a packed sequence shorter than the grid's keys: nothing here)
        stage_tile<D, BN, THREADS>(kt, k, kStart, klen, s.hkv, kvh, firstKey);
        stage_tile<D, BN, THREADS>(vt, v, kStart, klen, s.hkv, kvh, firstKey);
        commit_copies();
        float dka[1][DW / 8][4], dva[1][DW / 8][4];
        clear(dka);
        clear(dva);
        const float scaleLog2 = s.scale * LOG2E;
        int offset = s.tk - s.tq, visible = visible_keys(s, b);
        int firstTile = s.causal ? max(0, firstKey - offset) / QT : 0;
        int tilesPerHead = max(0, (qlen + QT - 1) / QT - firstTile);
        int steps = firstKey < visible ? tilesPerHead * group : 0;  // (padding keys: no query sees them, zero gradients)
        auto stage = [&](int j, int buffer) {
            int h = kvh * group + j / tilesPerHead, first = (firstTile + j % tilesPerHead) * QT;
            stage_tile<D, QT, THREADS>(qs + buffer * Q_TILE, q, qStart, qlen, s.hq, h, first);
            stage_tile<D, QT, THREADS>(gs + buffer * Q_TILE, dout, qStart, qlen, s.hq, h, first);
            for (int r = threadIdx.x; r < QT; r += THREADS) {
                i64 at = (qStart + min(first + r, qlen - 1)) * s.hq + h;
                copy4_async(lses + 4 * (buffer * QT + r), lse + at);
                copy4_async(deltas + 4 * (buffer * QT + r), delta + at);
            }
            commit_copies();
        };
        if (steps > 0) stage(0, 0);
        for (int j = 0; j < steps; ++j) {
            // Tile j has landed for everyone, and everyone is done with tile j − 1 (its Q/dO buffer, which tile
            // j + 1 takes, and dSᵀ): two barriers per tile.
            wait_copies<0>();
            __syncthreads();
            if (j + 1 < steps) stage(j + 1, (j + 1) & 1);
            const int buffer = j & 1, h = kvh * group + j / tilesPerHead, first = (firstTile + j % tilesPerHead) * QT;
            const saddr qt = qs + buffer * Q_TILE, gt = gs + buffer * Q_TILE;
            const float* tileLse = lsePointer + buffer * QT;
            const float* tileDelta = deltaPointer + buffer * QT;
            float st[1][QW / 8][4], dpt[1][QW / 8][4];
            clear(st);
            clear(dpt);
            #pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                unsigned ka[1][4], va[1][4];
                load_a<true>(ka[0], kt + 2 * (kw * 16 * STRIDE + kk * 16), STRIDE, lane);
                load_a<true>(va[0], vt + 2 * (kw * 16 * STRIDE + kk * 16), STRIDE, lane);
                mma_step<1, QW / 8, true>(st, ka, qt + 2 * (part * QW * STRIDE + kk * 16), STRIDE, lane);   // Sᵀ = K·Qᵀ
                mma_step<1, QW / 8, true>(dpt, va, gt + 2 * (part * QW * STRIDE + kk * 16), STRIDE, lane);  // dPᵀ = V·dOᵀ
            }
            // Only tiles past tq or the visible keys, or crossing the causal diagonal, need a mask.
            bool edge = first + QT > qlen || firstKey + BN > visible || (s.causal && first + offset < firstKey + BN - 1);
            #pragma unroll
            for (int nt = 0; nt < QW / 8; ++nt) {
                #pragma unroll
                for (int e = 0; e < 4; ++e) {
                    int c = part * QW + nt * 8 + t * 2 + (e & 1);  // the query's row in the tile
                    float p = exp2_fast(st[0][nt][e] * scaleLog2 - tileLse[c] * LOG2E);
                    if (edge) {
                        int query = first + c, key = key0 + (e >> 1) * 8;
                        if (query >= qlen || key >= visible || (s.causal && key > offset + query)) p = 0.0f;
                    }
                    const float z = drops_probabilities(s) ? dropout_factor(s, b, h, first + c, key0 + (e >> 1) * 8) : 1.0f;
                    st[0][nt][e] = p * z;
                    dpt[0][nt][e] = p * (z * dpt[0][nt][e] - tileDelta[c]) * s.scale;
                }
                u16* at = dsPointer + (kw * 16 + g) * SSTRIDE + part * QW + nt * 8 + t * 2;
                *(unsigned*)at = pack2(dpt[0][nt][0], dpt[0][nt][1]);
                *(unsigned*)(at + 8 * SSTRIDE) = pack2(dpt[0][nt][2], dpt[0][nt][3]);
                if (SPLIT > 1) {
                    u16* pat = psPointer + (kw * 16 + g) * SSTRIDE + part * QW + nt * 8 + t * 2;
                    *(unsigned*)pat = pack2(st[0][nt][0], st[0][nt][1]);
                    *(unsigned*)(pat + 8 * SSTRIDE) = pack2(st[0][nt][2], st[0][nt][3]);
                }
            }
            if constexpr (SPLIT == 1) {
                #pragma unroll
                for (int kstep = 0; kstep < QT / 16; ++kstep) {
                    unsigned a[1][4];
                    accumulator_fragments(a, st, kstep);
                    mma_step<1, D / 8, false>(dva, a, gt + 2 * kstep * 16 * STRIDE, STRIDE, lane);  // dV += Pᵀ·dO
                    accumulator_fragments(a, dpt, kstep);
                    mma_step<1, D / 8, false>(dka, a, qt + 2 * kstep * 16 * STRIDE, STRIDE, lane);  // dK += dSᵀ·Q
                }
                __syncthreads();  // dSᵀ complete
            } else {
                __syncthreads();  // Pᵀ and dSᵀ complete
                #pragma unroll
                for (int kstep = 0; kstep < QT / 16; ++kstep) {
                    unsigned a[1][4];
                    load_a<true>(a[0], pst + 2 * (kw * 16 * SSTRIDE + kstep * 16), SSTRIDE, lane);
                    mma_step<1, DW / 8, false>(dva, a, gt + 2 * (kstep * 16 * STRIDE + part * DW), STRIDE, lane);  // dV += Pᵀ·dO
                    load_a<true>(a[0], dst + 2 * (kw * 16 * SSTRIDE + kstep * 16), SSTRIDE, lane);
                    mma_step<1, DW / 8, false>(dka, a, qt + 2 * (kstep * 16 * STRIDE + part * DW), STRIDE, lane);  // dK += dSᵀ·Q
                }
            }
            float dqa[1][DQW / 8][4];
            clear(dqa);
            #pragma unroll
            for (int kstep = 0; kstep < BN / 16; ++kstep) {  // dQ += dS·K, dS read as the transpose of dSᵀ
                unsigned a[1][4];
                load_a<false>(a[0], dst + 2 * (kstep * 16 * SSTRIDE + qrow * 16), SSTRIDE, lane);
                mma_step<1, DQW / 8, false>(dqa, a, kt + 2 * (kstep * 16 * STRIDE + dgroup * DQW), STRIDE, lane);
            }
            #pragma unroll
            for (int half = 0; half < 2; ++half) {
                int query = first + qrow * 16 + g + half * 8;
                if (query >= qlen) continue;
                float* row = dq_accum + (qStart + query) * s.hq * D + (i64)h * D + dgroup * DQW;
                #pragma unroll
                for (int nt = 0; nt < DQW / 8; ++nt) add_pair_atomically(row + nt * 8 + t * 2, dqa[0][nt][2 * half], dqa[0][nt][2 * half + 1]);
            }
        }
        if (steps == 0) wait_copies<0>();  // (the K/V tiles, when no query sees these keys)
        store_rows<D, DW / 8>(dk, dka[0], 1.0f, 1.0f, kStart, klen, s.hkv, kvh, firstKey + kw * 16 + g, part * DW, t);
        store_rows<D, DW / 8>(dv, dva[0], 1.0f, 1.0f, kStart, klen, s.hkv, kvh, firstKey + kw * 16 + g, part * DW, t);
    }

    """#
}
