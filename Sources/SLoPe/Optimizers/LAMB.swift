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
/// float32 copy gives `u` as the difference (moments updated as AdamW updates them), the two norms are read
/// back, then `w −= lr·ratio·u`. For SLoPe weights `parameter` is the compressed values, so the trust ratio is
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
    let ratio = step.weightDecay == 0 ? 1 : trustRatio(
        parameterSquares: try backend.doubles(backend.sumOfSquares(before))[0],
        updateSquares: try backend.doubles(backend.sumOfSquares(update))[0])
    try backend.accumulate(update, into: before, alpha: -Double(step.learningRate) * ratio)
    try backend.copy(before, into: parameter)
}

/// `‖w‖/‖u‖` from the squared norms, 1 when either is zero (a fresh zero tensor, or no update).
func trustRatio(parameterSquares: Double, updateSquares: Double) -> Double {
    parameterSquares > 0 && updateSquares > 0 ? (parameterSquares / updateSquares).squareRoot() : 1
}
