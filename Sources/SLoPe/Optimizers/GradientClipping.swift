/// The global L2 norm of all gradients, sparse and dense together, in the given order.
public func gradientNorm(parameters: [Parameter], sparseWeights: [SparseWeight], backend: any Backend) throws -> Double {
    try backend.totalSumOfSquares(parameters.compactMap(\.gradient) + sparseWeights.compactMap(\.gradient)).squareRoot()
}

/// The factor `torch.nn.utils.clip_grad_norm_` scales gradients by: `maxNorm / (norm + 1e-6)` above `maxNorm`, else 1.
public func clippingFactor(norm: Double, maxNorm: Double) throws -> Double {
    guard maxNorm > 0 else {
        throw TensorError.invalidArgument(operation: "clipGradientNorm", reason: "maxNorm must be positive, got \(maxNorm)")
    }
    return norm > maxNorm ? maxNorm / (norm + 1e-6) : 1
}

/// Scales all gradients, sparse and dense together, so their global L2 norm is at most `maxNorm`.
/// Returns the norm before clipping (as `torch.nn.utils.clip_grad_norm_` does). Training passes the factor to
/// the optimizers instead (``AdamW/step(learningRate:gradientScale:)``), which saves a pass over the gradients.
@discardableResult
public func clipGradientNorm(
    parameters: [Parameter], sparseWeights: [SparseWeight], maxNorm: Double, backend: any Backend
) throws -> Double {
    _ = try clippingFactor(norm: 0, maxNorm: maxNorm)  // validates maxNorm before any work
    let norm = try gradientNorm(parameters: parameters, sparseWeights: sparseWeights, backend: backend)
    let factor = try clippingFactor(norm: norm, maxNorm: maxNorm)
    if factor != 1 {
        for gradient in parameters.compactMap(\.gradient) + sparseWeights.compactMap(\.gradient) {
            try backend.scaleInPlace(gradient, by: factor)
        }
    }
    return norm
}
