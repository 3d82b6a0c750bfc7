/// Scales all gradients, sparse and dense together, so their global L2 norm is at most `maxNorm`.
/// Returns the norm before clipping (as `torch.nn.utils.clip_grad_norm_` does).
@discardableResult
public func clipGradientNorm(
    parameters: [Parameter], sparseWeights: [SparseWeight], maxNorm: Double, backend: any Backend
) throws -> Double {
    guard maxNorm > 0 else {
        throw TensorError.invalidArgument(operation: "clipGradientNorm", reason: "maxNorm must be positive, got \(maxNorm)")
    }
    let gradients = parameters.compactMap(\.gradient) + sparseWeights.compactMap(\.gradient)
    var total = 0.0
    for gradient in gradients { total += try backend.scalar(backend.sumOfSquares(gradient)) }
    let norm = total.squareRoot()
    if norm > maxNorm {
        let factor = maxNorm / (norm + 1e-6)
        for gradient in gradients { try backend.scaleInPlace(gradient, by: factor) }
    }
    return norm
}
