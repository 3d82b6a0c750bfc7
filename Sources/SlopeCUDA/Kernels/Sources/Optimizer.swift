extension KernelSources {
    /// The fused AdamW step.
    static let optimizer = #"""
    // PyTorch AdamW on param, grad [n] T with moments m, v [n] float32 (or bf16), updated in place; correction_i =
    // 1 − β_i^step from the host; grad_scale undoes loss scaling / averaging and applies gradient clipping. A bf16
    // parameter is stored rounded to nearest, or with `stochastic` at random (ParameterRounding in SlopeCore: the
    // same hash of rounding_seed and the element's index, so the CPU backend computes the same weights).
    // Whole 16-byte packs of T (and the matching moments) where aligned, then single elements; 1-D grid.
    struct AdamWHyper { float lr, beta1, beta2, eps, weight_decay, correction1, correction2, grad_scale; int stochastic; unsigned int seed; };
    static __device__ __forceinline__ unsigned int mix32(unsigned int x) {
        x ^= x >> 16; x *= 0x7FEB352Du; x ^= x >> 15; x *= 0x846CA68Bu; x ^= x >> 16;
        return x;
    }
    static __device__ __forceinline__ unsigned int rounding_bits(unsigned int seed, i64 index) {
        unsigned long long i = (unsigned long long)index;
        return mix32((unsigned int)i ^ mix32(seed ^ mix32((unsigned int)(i >> 32))));
    }
    template <typename U> __device__ __forceinline__ U store_parameter(float x, const AdamWHyper&, i64) { return from_float<U>(x); }
    // Adding 16 random bits below the kept ones and truncating rounds the magnitude up with probability equal to
    // the dropped fraction; NaN and infinities round to nearest.
    template <> __device__ __forceinline__ bf16 store_parameter<bf16>(float x, const AdamWHyper& h, i64 index) {
        unsigned int u = __float_as_uint(x);
        if (!h.stochastic || (u & 0x7F800000u) == 0x7F800000u) return from_float<bf16>(x);
        bf16 r;
        r.bits = (unsigned short)((u + (rounding_bits(h.seed, index) & 0xFFFFu)) >> 16);
        return r;
    }
    // Adam's moments after gradient g (already scaled), and its bias-corrected direction m̂/(√v̂ + ε).
    static __device__ __forceinline__ void adam_moments(float g, float& m, float& v, const AdamWHyper& h) {
        m = h.beta1 * m + (1.0f - h.beta1) * g;
        v = h.beta2 * v + (1.0f - h.beta2) * g * g;
    }
    static __device__ __forceinline__ float adam_direction(float m, float v, const AdamWHyper& h) {
        return (m / h.correction1) / (sqrtf(v / h.correction2) + h.eps);
    }
    static __device__ __forceinline__ float adamw_update(float p, float g, float& m, float& v, const AdamWHyper& h) {
        adam_moments(g * h.grad_scale, m, v, h);
        float update = adam_direction(m, v, h);
        // Decoupled weight decay applies to the pre-update parameter, as in torch.optim.AdamW.
        return p * (1.0f - h.lr * h.weight_decay) - h.lr * update;
    }
    // PACK moments of type M, the moments of one pack of T: 8 to 32 bytes, aligned to their size up to 16 (so an
    // array of them has no padding).
    template <typename M> struct alignas(PACK * sizeof(M) < 16 ? PACK * sizeof(M) : 16) MomentPack { M v[PACK]; };

    template <typename M>
    __device__ __forceinline__ void adamw_pack(T* param, const T* grad, M* m, M* v, i64 pk, const AdamWHyper& h) {
        Pack<T> ps = ((Pack<T>*)param)[pk];
        Pack<T> gs = ((const Pack<T>*)grad)[pk];
        MomentPack<M> ms = ((MomentPack<M>*)m)[pk], vs = ((MomentPack<M>*)v)[pk];
        #pragma unroll
        for (int j = 0; j < PACK; ++j) {
            float mj = to_float(ms.v[j]), vj = to_float(vs.v[j]);
            ps.v[j] = store_parameter<T>(adamw_update(to_float(ps.v[j]), to_float(gs.v[j]), mj, vj, h), h, pk * PACK + j);
            ms.v[j] = from_float<M>(mj);
            vs.v[j] = from_float<M>(vj);
        }
        ((MomentPack<M>*)m)[pk] = ms;
        ((MomentPack<M>*)v)[pk] = vs;
        ((Pack<T>*)param)[pk] = ps;
    }

    template <typename M>
    __device__ __forceinline__ void adamw_element(T* param, const T* grad, M* m, M* v, i64 i, const AdamWHyper& h) {
        float mi = to_float(m[i]), vi = to_float(v[i]);
        param[i] = store_parameter<T>(adamw_update(to_float(param[i]), to_float(grad[i]), mi, vi, h), h, i);
        m[i] = from_float<M>(mi);
        v[i] = from_float<M>(vi);
    }

    template <typename M>
    __device__ void adamw_step(T* param, const T* grad, M* m, M* v, i64 n, const AdamWHyper& h) {
        i64 first = (i64)blockIdx.x * blockDim.x + threadIdx.x, stride = (i64)gridDim.x * blockDim.x;
        i64 packs = aligned16(param) && aligned16(grad) && aligned16(m) && aligned16(v) ? n / PACK : 0;
        for (i64 pk = first; pk < packs; pk += stride) adamw_pack<M>(param, grad, m, v, pk, h);
        for (i64 i = packs * PACK + first; i < n; i += stride) adamw_element<M>(param, grad, m, v, i, h);
    }

    #define ADAMW_PARAMS long long n, float lr, float beta1, float beta2, float eps, float weight_decay, float correction1, \
        float correction2, float grad_scale, int stochastic, unsigned int rounding_seed
    #define ADAMW_HYPER AdamWHyper{lr, beta1, beta2, eps, weight_decay, correction1, correction2, grad_scale, stochastic, rounding_seed}
    extern "C" __global__ void adamw(T* param, const T* grad, float* m, float* v, ADAMW_PARAMS) {
        adamw_step<float>(param, grad, m, v, n, ADAMW_HYPER);
    }
    // The same with bf16 moments (--optimizer-state bfloat16): updated in float32, stored rounded to nearest even.
    extern "C" __global__ void adamw_bf16_moments(T* param, const T* grad, bf16* m, bf16* v, ADAMW_PARAMS) {
        adamw_step<bf16>(param, grad, m, v, n, ADAMW_HYPER);
    }

    // Multi-tensor AdamW: up to MULTI_TENSORS tensors in one launch, their addresses in the kernel's parameters
    // (no table to upload, so no copy that could wait on the stream). Tensor t owns blocks first_block ...
    // first_block + ceil(n / chunk) − 1 of the grid; block b updates elements [(b − first_block)·chunk, +chunk) of
    // its tensor, whole packs where the tensor's operands are aligned. chunk is a multiple of PACK. Each tensor
    // has its own weight decay and rounding; the other hyper-parameters are shared.
    struct AdamWEntry { T* param; const T* grad; void* m; void* v; long long n; long long first_block; float weight_decay;
                        unsigned int seed; int stochastic; int unused; };
    struct AdamWTable { AdamWEntry entries[MULTI_TENSORS]; int count; };
    template <typename M>
    __device__ void adamw_multi_step(const AdamWTable& table, long long chunk, AdamWHyper h) {
        const AdamWEntry& e = table.entries[entry_of_block(table.entries, table.count, blockIdx.x)];
        h.weight_decay = e.weight_decay;
        h.seed = e.seed;
        h.stochastic = e.stochastic;
        i64 begin = ((i64)blockIdx.x - e.first_block) * chunk, end = min((i64)e.n, begin + chunk);
        M* m = (M*)e.m;
        M* v = (M*)e.v;
        bool packed = aligned16(e.param) && aligned16(e.grad) && aligned16(m) && aligned16(v);
        i64 packed_end = packed ? begin + (end - begin) / PACK * PACK : begin;
        for (i64 pk = begin / PACK + threadIdx.x; pk < packed_end / PACK; pk += blockDim.x) adamw_pack<M>(e.param, e.grad, m, v, pk, h);
        for (i64 i = packed_end + threadIdx.x; i < end; i += blockDim.x) adamw_element<M>(e.param, e.grad, m, v, i, h);
    }
    #define ADAMW_MULTI_PARAMS long long chunk, float lr, float beta1, float beta2, float eps, float correction1, float correction2, \
        float grad_scale
    #define ADAMW_MULTI_HYPER AdamWHyper{lr, beta1, beta2, eps, 0.0f, correction1, correction2, grad_scale, 0, 0u}
    extern "C" __global__ void adamw_multi(AdamWTable table, ADAMW_MULTI_PARAMS) {
        adamw_multi_step<float>(table, chunk, ADAMW_MULTI_HYPER);
    }
    extern "C" __global__ void adamw_multi_bf16_moments(AdamWTable table, ADAMW_MULTI_PARAMS) {
        adamw_multi_step<bf16>(table, chunk, ADAMW_MULTI_HYPER);
    }

    // LAMB over many tensors (apex's FusedLAMB, as NVIDIA's BERT recipe runs it), three launches per table of
    // AdamWTable entries, nothing read back: the moments step and each block's Σp² and Σu² of the direction
    // u = m̂/(√v̂ + ε) + λ·p; the per-tensor sums; then p −= lr·ratio·u with ratio = ‖p‖/‖u‖ (1 when either is zero, and
    // for tensors without weight decay), u recomputed from the stored moments (so no copy of it is kept), stored
    // rounded to nearest. `partials` [2 · blocks], `sums` [2 · entries] float.
    static __device__ __forceinline__ float lamb_direction(float p, float m, float v, const AdamWHyper& h, float weight_decay) {
        return adam_direction(m, v, h) + weight_decay * p;
    }
    template <typename M>
    __device__ void lamb_moments_step(const AdamWTable& table, long long chunk, const AdamWHyper& h, float* partials) {
        const AdamWEntry& e = table.entries[entry_of_block(table.entries, table.count, blockIdx.x)];
        i64 begin = ((i64)blockIdx.x - e.first_block) * chunk, end = min((i64)e.n, begin + chunk);
        M* m = (M*)e.m;
        M* v = (M*)e.v;
        double ps = 0.0, us = 0.0;
        for (i64 i = begin + threadIdx.x; i < end; i += blockDim.x) {
            float p = to_float(e.param[i]), mf = to_float(m[i]), vf = to_float(v[i]);
            adam_moments(to_float(e.grad[i]) * h.grad_scale, mf, vf, h);
            M mi = from_float<M>(mf), vi = from_float<M>(vf);
            m[i] = mi;
            v[i] = vi;
            float u = lamb_direction(p, to_float(mi), to_float(vi), h, e.weight_decay);
            ps += (double)p * p;
            us += (double)u * u;
        }
        ps = block_sum_double(ps);
        us = block_sum_double(us);
        if (threadIdx.x == 0) { partials[2 * blockIdx.x] = (float)ps; partials[2 * blockIdx.x + 1] = (float)us; }
    }
    extern "C" __global__ void lamb_moments_multi(AdamWTable table, ADAMW_MULTI_PARAMS, float* partials) {
        lamb_moments_step<float>(table, chunk, ADAMW_MULTI_HYPER, partials);
    }
    extern "C" __global__ void lamb_moments_multi_bf16_moments(AdamWTable table, ADAMW_MULTI_PARAMS, float* partials) {
        lamb_moments_step<bf16>(table, chunk, ADAMW_MULTI_HYPER, partials);
    }
    // Block t sums tensor t's blocks' partials.
    extern "C" __global__ void lamb_norms_multi(AdamWTable table, long long chunk, const float* partials, float* sums) {
        const AdamWEntry& e = table.entries[blockIdx.x];
        i64 blocks = (e.n + chunk - 1) / chunk;
        double ps = 0.0, us = 0.0;
        for (i64 b = threadIdx.x; b < blocks; b += blockDim.x) {
            ps += (double)partials[2 * (e.first_block + b)];
            us += (double)partials[2 * (e.first_block + b) + 1];
        }
        ps = block_sum_double(ps);
        us = block_sum_double(us);
        if (threadIdx.x == 0) { sums[2 * blockIdx.x] = (float)ps; sums[2 * blockIdx.x + 1] = (float)us; }
    }
    template <typename M>
    __device__ void lamb_apply_step(const AdamWTable& table, long long chunk, const AdamWHyper& h, const float* sums) {
        int t = entry_of_block(table.entries, table.count, blockIdx.x);
        const AdamWEntry& e = table.entries[t];
        i64 begin = ((i64)blockIdx.x - e.first_block) * chunk, end = min((i64)e.n, begin + chunk);
        float ps = sums[2 * t], us = sums[2 * t + 1];
        float ratio = e.weight_decay != 0.0f && ps > 0.0f && us > 0.0f ? sqrtf(ps / us) : 1.0f;
        const M* m = (const M*)e.m;
        const M* v = (const M*)e.v;
        for (i64 i = begin + threadIdx.x; i < end; i += blockDim.x) {
            float p = to_float(e.param[i]);
            e.param[i] = from_float<T>(p - h.lr * ratio * lamb_direction(p, to_float(m[i]), to_float(v[i]), h, e.weight_decay));
        }
    }
    extern "C" __global__ void lamb_apply_multi(AdamWTable table, ADAMW_MULTI_PARAMS, const float* sums) {
        lamb_apply_step<float>(table, chunk, ADAMW_MULTI_HYPER, sums);
    }
    extern "C" __global__ void lamb_apply_multi_bf16_moments(AdamWTable table, ADAMW_MULTI_PARAMS, const float* sums) {
        lamb_apply_step<bf16>(table, chunk, ADAMW_MULTI_HYPER, sums);
    }

    // AdamW on W's values where they live in cuSPARSELt's compressed copy: position p holds slot s of W's
    // compressed order (gradient and moments are in that order), s = slots[p] for a full map, else
    // packed_map_slot (the packed map, as scatter_values_packed reads it).
    template <typename M>
    __device__ void adamw_mapped_step(T* compressed, const unsigned int* slots, const unsigned int* bases, const short* offsets,
                                      int log2_block, long long offset_mask, const T* grad, M* m, M* v, i64 n, const AdamWHyper& h) {
        GRID_STRIDE(p, n) {
            i64 s = slots ? (i64)slots[p] : packed_map_slot(bases, offsets, p, log2_block, offset_mask);
            float ms = to_float(m[s]), vs = to_float(v[s]);
            // The random bits follow the slot s, so values in cuSPARSELt's copy round as they would in W's order.
            compressed[p] = store_parameter<T>(adamw_update(to_float(compressed[p]), to_float(grad[s]), ms, vs, h), h, s);
            m[s] = from_float<M>(ms);
            v[s] = from_float<M>(vs);
        }
    }
    #define ADAMW_MAPPED_PARAMS T* compressed, const unsigned int* slots, const unsigned int* bases, const short* offsets, \
        int log2_block, long long offset_mask, const T* grad
    extern "C" __global__ void adamw_mapped(ADAMW_MAPPED_PARAMS, float* m, float* v, ADAMW_PARAMS) {
        adamw_mapped_step<float>(compressed, slots, bases, offsets, log2_block, offset_mask, grad, m, v, n, ADAMW_HYPER);
    }
    extern "C" __global__ void adamw_mapped_bf16_moments(ADAMW_MAPPED_PARAMS, bf16* m, bf16* v, ADAMW_PARAMS) {
        adamw_mapped_step<bf16>(compressed, slots, bases, offsets, log2_block, offset_mask, grad, m, v, n, ADAMW_HYPER);
    }
    """#
}
