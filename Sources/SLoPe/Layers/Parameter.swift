/// A trainable dense tensor and its gradient, named like its checkpoint key (`h.0.mlp.c_fc.bias`).
public final class Parameter {
    public let name: String
    public var value: Tensor
    /// Accumulated by backward passes; allocated on first use, cleared by ``zeroGradient(_:)``.
    public private(set) var gradient: Tensor?

    public init(name: String, value: Tensor) {
        self.name = name
        self.value = value
    }

    /// The gradient buffer, created zero-filled on first use.
    public func gradientBuffer(_ backend: any Backend) throws -> Tensor {
        if let gradient { return gradient }
        let buffer = try backend.zeros(value.shape, dtype: value.dtype)
        gradient = buffer
        return buffer
    }

    /// Adds `alpha · delta` to the gradient.
    public func accumulateGradient(_ delta: Tensor, alpha: Double = 1, _ backend: any Backend) throws {
        try backend.accumulate(delta, into: gradientBuffer(backend), alpha: alpha)
    }

    public func zeroGradient(_ backend: any Backend) throws {
        if let gradient { try backend.fill(gradient, with: 0) }
    }
}

/// Anything that owns trainable state: dense parameters for AdamW and SLoPe weights for SparseAdamW.
public protocol Layer: AnyObject {
    var parameters: [Parameter] { get }
    var sparseWeights: [SparseWeight] { get }
}

extension Layer {
    public var sparseWeights: [SparseWeight] { [] }

    public func zeroGradients(_ backend: any Backend) throws {
        for parameter in parameters { try parameter.zeroGradient(backend) }
        for weight in sparseWeights { try weight.zeroGradient() }
    }
}

extension Tensor {
    /// The tensor seen as `[rows, lastDimension]`.
    func flattenedToMatrix(_ operation: String) throws -> Tensor {
        let (rows, columns) = try asMatrix(operation: operation)
        return try reshaped([rows, columns])
    }
}
