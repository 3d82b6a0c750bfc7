/// The MLP of a transformer block: `down(act(up(x)))` (GPT/OPT) or SwiGLU `down(silu(gate(x)) ⊙ up(x))` (LLaMA).
public final class FeedForward: Layer {
    public var up: any Module
    public var down: any Module
    /// SwiGLU's gate projection; `nil` for a plain MLP.
    public var gate: (any Module)?
    public let activation: Activation
    let backend: any Backend
    /// For backward: the gate projection's output (SwiGLU) and the activation's input — or, for ReLU, its
    /// output, from which the derivative reads the same (h > 0 exactly where u > 0) and which the down
    /// projection keeps anyway. Otherwise the down projection's input h is recomputed from these in backward
    /// instead of being kept: either way, one [tokens, intermediate] tensor less per block.
    private var saved: (gate: Tensor?, up: Tensor)?
    /// Whether `down` forgets its input after forward and gets h recomputed in backward (not for ReLU, whose
    /// saved output is h itself).
    private var recomputesHidden: Bool { (gate != nil || activation != .relu) && down is InputSuppliedModule }

    init(up: any Module, down: any Module, gate: (any Module)?, activation: Activation, backend: any Backend) {
        self.up = up
        self.down = down
        self.gate = gate
        self.activation = activation
        self.backend = backend
    }

    public var projections: [any Module] { [gate, up, down].compactMap { $0 } }
    public var parameters: [Parameter] { projections.flatMap(\.parameters) }
    public var sparseWeights: [SparseWeight] { projections.flatMap(\.sparseWeights) }

    public func forward(_ x: Tensor) throws -> Tensor {
        if gate == nil, activation == .relu, let up = up as? any ActivatedModule {
            // ReLU straight out of the up projection (in its GEMM's epilogue where the backend can): only h is kept.
            let h = try up.forward(x, then: .relu)
            saved = (nil, h)
            return try down.forward(h)
        }
        let u = try up.forward(x)
        let g = try gate?.forward(x)
        let h = try hidden(gate: g, up: u)
        saved = (g, gate == nil && activation == .relu ? h : u)
        let y = try down.forward(h)
        if recomputesHidden { (down as? InputSuppliedModule)?.forgetInput() }
        return y
    }

    /// The down projection's input: act(u), or act(g) ⊙ u for SwiGLU.
    private func hidden(gate g: Tensor?, up u: Tensor) throws -> Tensor {
        guard let g else { return try backend.activation(u, activation) }
        return try backend.gatedActivation(gate: g, up: u, activation)
    }

    /// Forgets the hidden activations and the projections' inputs.
    public func releaseActivations() {
        saved = nil
        for projection in projections { projection.releaseActivations() }
    }

    public func backward(_ dy: Tensor) throws -> Tensor { try backward(dy, into: nil) }

    /// `dx +=` the input gradient, inside the first projections' GEMMs (beta = 1): a residual's gradient takes this
    /// branch's without an add of its own. `dx` may be `dy` itself (a post-norm block whose dropout is off).
    public func backward(_ dy: Tensor, addingInputGradientTo dx: Tensor) throws { _ = try backward(dy, into: dx) }

    private func backward(_ dy: Tensor, into target: Tensor?) throws -> Tensor {
        guard let saved else {
            throw TensorError.invalidArgument(operation: "FeedForward.backward", reason: "call forward first")
        }
        let dHidden: Tensor
        if recomputesHidden, let down = down as? InputSuppliedModule {
            dHidden = try down.backward(dy, input: hidden(gate: saved.gate, up: saved.up))
        } else {
            dHidden = try down.backward(dy)
        }
        // (dy is read for the last time above: from here a target that is dy itself may be written.)
        guard let gate, let g = saved.gate else {
            return try up.backward(backend.activationBackward(saved.up, gradient: dHidden, activation), addingInputGradientTo: target, backend)
        }
        // h = act(g) ⊙ u: du = dh ⊙ act(g), dg = act'(g) ⊙ (dh ⊙ u).
        let gradients = try backend.gatedActivationBackward(gate: g, up: saved.up, gradient: dHidden, activation)
        let dx = try gate.backward(gradients.gate, addingInputGradientTo: target, backend)
        try up.backward(gradients.up, addingInputGradientTo: dx, backend)
        return dx
    }
}
