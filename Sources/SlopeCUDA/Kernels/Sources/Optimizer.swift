extension KernelSources {
    /// The fused AdamW step.
    static let optimizer = #"""
    // PyTorch AdamW on param, grad [n] T with moments m, v [n] float32, updated in place; correction_i =
    // 1 − β_i^step from the host; grad_scale undoes loss scaling / averaging and applies gradient clipping.
    // Whole 16-byte packs of T (and the matching float4s of m, v) where aligned, then single elements; 1-D grid.
    struct AdamWHyper { float lr, beta1, beta2, eps, weight_decay, correction1, correction2, grad_scale; };
    static __device__ __forceinline__ float adamw_update(float p, float g, float& m, float& v, const AdamWHyper& h) {
        g *= h.grad_scale;
        m = h.beta1 * m + (1.0f - h.beta1) * g;
        v = h.beta2 * v + (1.0f - h.beta2) * g * g;
        float update = (m / h.correction1) / (sqrtf(v / h.correction2) + h.eps);
        // Decoupled weight decay applies to the pre-update parameter, as in torch.optim.AdamW.
        return p * (1.0f - h.lr * h.weight_decay) - h.lr * update;
    }
    extern "C" __global__ void adamw(T* param, const T* grad, float* m, float* v, long long n, float lr, float beta1,
                                     float beta2, float eps, float weight_decay, float correction1, float correction2,
                                     float grad_scale) {
        const AdamWHyper h{lr, beta1, beta2, eps, weight_decay, correction1, correction2, grad_scale};
        i64 first = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
        i64 packs = aligned16(param) && aligned16(grad) && aligned16(m) && aligned16(v) ? n / PACK : 0;
        for (i64 pk = first; pk < packs; pk += stride) {
            Pack<T> ps = ((Pack<T>*)param)[pk];
            Pack<T> gs = ((const Pack<T>*)grad)[pk];
            float4 ms[PACK / 4], vs[PACK / 4];
            #pragma unroll
            for (int j = 0; j < PACK / 4; ++j) { ms[j] = ((float4*)m)[pk * (PACK / 4) + j]; vs[j] = ((float4*)v)[pk * (PACK / 4) + j]; }
            float* mf = (float*)ms;
            float* vf = (float*)vs;
            #pragma unroll
            for (int j = 0; j < PACK; ++j) ps.v[j] = from_float<T>(adamw_update(to_float(ps.v[j]), to_float(gs.v[j]), mf[j], vf[j], h));
            #pragma unroll
            for (int j = 0; j < PACK / 4; ++j) { ((float4*)m)[pk * (PACK / 4) + j] = ms[j]; ((float4*)v)[pk * (PACK / 4) + j] = vs[j]; }
            ((Pack<T>*)param)[pk] = ps;
        }
        for (i64 i = packs * PACK + first; i < n; i += stride) {
            float mi = m[i], vi = v[i];
            param[i] = from_float<T>(adamw_update(to_float(param[i]), to_float(grad[i]), mi, vi, h));
            m[i] = mi;
            v[i] = vi;
        }
    }

    // AdamW on W's values where they live in cuSPARSELt's compressed copy: position p holds slot s of W's
    // compressed order (gradient and moments are in that order), s = slots[p] for a full map, else
    // packed_map_slot (the packed map, as scatter_values_packed reads it).
    extern "C" __global__ void adamw_mapped(T* compressed, const unsigned int* slots, const unsigned int* bases, const short* offsets,
                                            int log2_block, long long offset_mask, const T* grad, float* m, float* v, long long n,
                                            float lr, float beta1, float beta2, float eps, float weight_decay, float correction1,
                                            float correction2, float grad_scale) {
        const AdamWHyper h{lr, beta1, beta2, eps, weight_decay, correction1, correction2, grad_scale};
        GRID_STRIDE(p, n) {
            i64 s = slots ? (i64)slots[p] : packed_map_slot(bases, offsets, p, log2_block, offset_mask);
            float ms = m[s], vs = v[s];
            compressed[p] = from_float<T>(adamw_update(to_float(compressed[p]), to_float(grad[s]), ms, vs, h));
            m[s] = ms;
            v[s] = vs;
        }
    }
    """#
}
