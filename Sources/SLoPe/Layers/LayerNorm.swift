/// LayerNorm over the last dimension with a learned scale and shift.
public final class LayerNorm: Layer {
    public let weight: Parameter
    public let bias: Parameter
    public let epsilon: Float
    let backend: any Backend
    private var saved: (input: Tensor, output: LayerNormOutput)?

    public init(name: String = "ln", features: Int, epsilon: Float = 1e-5, dtype: DType = .float32, backend: any Backend) throws {
        self.backend = backend
        self.epsilon = epsilon
        weight = Parameter(name: "\(name).weight", value: try backend.tensor([Float](repeating: 1, count: features), shape: [features], dtype: dtype))
        bias = Parameter(name: "\(name).bias", value: try backend.zeros([features], dtype: dtype))
    }

    public var parameters: [Parameter] { [weight, bias] }

    // x [..., C] → y [..., C]
    public func forward(_ x: Tensor) throws -> Tensor {
        try normalize(x, adding: nil).output
    }

    public func forward(_ x: Tensor, adding residual: Tensor) throws -> (sum: Tensor, output: Tensor) {
        try forward(x, adding: residual, dropping: nil)
    }

    /// `norm(x + residual)`, the residual dropped first by `dropout` (in the norm's own pass) where given.
    public func forward(_ x: Tensor, adding residual: Tensor, dropping dropout: SeededDropout?) throws -> (sum: Tensor, output: Tensor) {
        let output = try normalize(x, adding: residual, dropping: dropout)
        return (try output.sum.orThrow(missingSumIn: "LayerNorm"), output.output)
    }

    private func normalize(_ x: Tensor, adding residual: Tensor?, dropping dropout: SeededDropout? = nil) throws -> LayerNormOutput {
        let output = try backend.layerNorm(
            x, adding: residual, droppingResidual: dropout, weight: weight.value, bias: bias.value, epsilon: epsilon)
        saved = (output.sum ?? x, output)
        return output
    }

    public func releaseActivations() { saved = nil }

    public func backward(_ dy: Tensor) throws -> Tensor {
        try backward(dy, residualGradient: nil)
    }

    public func backward(_ dy: Tensor, addingGradient residualGradient: Tensor) throws -> Tensor {
        try backward(dy, residualGradient: residualGradient)
    }

    /// The sum's gradient, and the gradient of a residual the forward pass dropped with `dropout` (the sum's,
    /// dropped in the norm's own pass; the sum's itself where `dropout` is nil).
    public func backward(_ dy: Tensor, droppingInputGradient dropout: SeededDropout?) throws -> (input: Tensor, dropped: Tensor) {
        let gradients = try gradients(dy, residualGradient: nil, dropping: dropout)
        return (gradients.input, gradients.droppedInput ?? gradients.input)
    }

    private func backward(_ dy: Tensor, residualGradient: Tensor?) throws -> Tensor {
        try gradients(dy, residualGradient: residualGradient, dropping: nil).input
    }

    private func gradients(_ dy: Tensor, residualGradient: Tensor?, dropping dropout: SeededDropout?) throws -> LayerNormGradients {
        guard let saved else {
            throw TensorError.invalidArgument(operation: "LayerNorm.backward", reason: "call forward first")
        }
        let gradients = try backend.layerNormBackward(
            dy, input: saved.input, weight: weight.value, saved: saved.output, addingGradient: residualGradient, droppingInputGradient: dropout)
        try weight.accumulateGradient(gradients.weight, backend)
        try bias.accumulateGradient(gradients.bias, backend)
        return gradients
    }
}
