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

    /// `dlogits` of `scale · loss` (scale < 1 for gradient accumulation).
    public func backward(scale: Float = 1) throws -> Tensor {
        guard let saved else {
            throw TensorError.invalidArgument(operation: "SoftmaxCrossEntropy.backward", reason: "call forward first")
        }
        return try backend.crossEntropyBackward(saved.output, targets: saved.targets, ignoreIndex: ignoreIndex, scale: scale)
    }
}
