extension KernelSources {
    /// The fused AdamW step.
    static let optimizer = #"""
    // PyTorch AdamW on param, grad [n] T with moments m, v [n] float32, updated in place; correction_i =
    // 1 − β_i^step from the host; grad_scale undoes loss scaling / averaging; 1-D grid.
    extern "C" __global__ void adamw(T* param, const T* grad, float* m, float* v, long long n, float lr, float beta1,
                                     float beta2, float eps, float weight_decay, float correction1, float correction2,
                                     float grad_scale) {
        GRID_STRIDE(i, n) {
            float g = to_float(grad[i]) * grad_scale;
            float mi = beta1 * m[i] + (1.0f - beta1) * g;
            float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
            m[i] = mi;
            v[i] = vi;
            float update = (mi / correction1) / (sqrtf(vi / correction2) + eps);
            // Decoupled weight decay applies to the pre-update parameter, as in torch.optim.AdamW.
            float p = to_float(param[i]);
            param[i] = from_float<T>(p * (1.0f - lr * weight_decay) - lr * update);
        }
    }
    """#
}
