import SlopeCore

/// Which update the optimizers apply with ``AdamWConfiguration``'s hyper-parameters.
public enum UpdateRule: String, Codable, Sendable, CaseIterable {
    /// PyTorch's AdamW: `w −= lr·(m̂/(√v̂ + ε) + λ·w)`.
    case adamw
    /// LAMB (You et al. 2019) as NVIDIA's BERT recipe runs it (apex's FusedLAMB): AdamW's update `u` scaled per
    /// tensor by the trust ratio `‖w‖/‖u‖` (1 when either is zero), applied to tensors with weight decay — with
    /// `--weight-decay-scope matrices` the weights, not the biases and norm gains.
    case lamb
}

/// One LAMB update of `parameter` in place, composed from backend ops: AdamW with a learning rate of 1 on a
/// float32 copy gives `u` as the difference (moments updated as AdamW updates them), then `w −= lr·ratio·u` with
/// the ratio of the two norms taken where they are (``Backend/trustRatioStep``). For SLoPe weights `parameter` is the compressed values, so the trust ratio is
/// taken over the kept values, as the method's sparse optimizer does.
func lambUpdate(
    parameter: Tensor, gradient: Tensor, moment1: Tensor, moment2: Tensor, step: AdamWStep, backend: any Backend
) throws {
    let before = try backend.cast(parameter, to: parameter.dtype == .float64 ? .float64 : .float32)
    let after = try backend.cast(before, to: before.dtype)
    var unit = step
    unit.learningRate = 1
    unit.rounding = .nearest
    // The copy is float32: so must the gradient be on backends whose AdamW takes one element type (CUDA).
    let gradient = gradient.dtype == after.dtype ? gradient : try backend.cast(gradient, to: after.dtype)
    try backend.adamW(parameter: after, gradient: gradient, moment1: moment1, moment2: moment2, step: unit)
    let update = try backend.subtract(before, after)  // m̂/(√v̂ + ε) + λ·w
    if step.weightDecay == 0 {
        try backend.accumulate(update, into: before, alpha: -Double(step.learningRate))
    } else {
        // The ratio is taken on the device: no norm is read back (a synchronisation per tensor on a GPU).
        try backend.trustRatioStep(
            before, update: update, parameterSquares: backend.sumOfSquares(before), updateSquares: backend.sumOfSquares(update),
            rate: Double(step.learningRate))
    }
    try backend.copy(before, into: parameter)
}
