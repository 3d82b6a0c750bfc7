/// Mean softmax cross-entropy over rows of logits `[n, V]` against `int32` targets `[n]`.
public final class SoftmaxCrossEntropy {
    /// Targets with this value do not count (padding).
    public let ignoreIndex: Int32
    let backend: any Backend
    private var saved: (output: CrossEntropyOutput, targets: Tensor)?

    public init(ignoreIndex: Int32 = -100, backend: any Backend) {
        self.ignoreIndex = ignoreIndex
        self.backend = backend
    }

    /// The mean loss.
    public func forward(logits: Tensor, targets: Tensor) throws -> Double {
        let output = try backend.crossEntropy(logits: logits, targets: targets, ignoreIndex: ignoreIndex)
        saved = (output, targets)
        return try backend.scalar(output.loss)
    }

    /// `dlogits` of `scale · loss` (scale < 1 for gradient accumulation). The probabilities kept by `forward` may
    /// become the result (no second `[n, V]` tensor), so each `forward` allows one `backward`.
    public func backward(scale: Float = 1) throws -> Tensor {
        guard let saved else {
            throw TensorError.invalidArgument(operation: "SoftmaxCrossEntropy.backward", reason: "call forward first")
        }
        self.saved = nil
        return try backend.crossEntropyBackwardConsuming(saved.output, targets: saved.targets, ignoreIndex: ignoreIndex, scale: scale)
    }
}
