import RealModule

extension CPUBackend {
    private enum BinaryOperation { case add, subtract, multiply }

    private func binary(_ a: Tensor, _ b: Tensor, _ operation: BinaryOperation, _ name: String) throws -> Tensor {
        try OperandChecks.elementwise(a, b, name)
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(a, as: type, name) { pa in
                try read(b, as: type, name) { pb in
                    try produce(a.shape, dtype: a.dtype, as: type) { out in
                        parallelFor(a.count, grain: 1 << 15) { r in
                            switch operation {
                            case .add: for i in r { out[i] = pa[i] + pb[i] }
                            case .subtract: for i in r { out[i] = pa[i] - pb[i] }
                            case .multiply: for i in r { out[i] = pa[i] * pb[i] }
                            }
                        }
                    }
                }
            }
        }
        return try (computeKind(for: a.dtype, operation: name) == .double ? run(Double.self) : run(Float.self))
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(a, b, .add, "add") }
    public func subtract(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(a, b, .subtract, "subtract") }
    public func multiply(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary(a, b, .multiply, "multiply") }

    public func scale(_ x: Tensor, by factor: Double) throws -> Tensor {
        let result = try cast(x, to: x.dtype)
        try scaleInPlace(result, by: factor)
        return result
    }

    public func scaleInPlace(_ x: Tensor, by factor: Double) throws {
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try modify(x, as: type, "scaleInPlace") { p in
                let f = T(factor)
                parallelFor(x.count, grain: 1 << 15) { r in for i in r { p[i] *= f } }
            }
        }
        try (computeKind(for: x.dtype, operation: "scaleInPlace") == .double ? run(Double.self) : run(Float.self))
    }

    public func accumulate(_ x: Tensor, into y: Tensor, alpha: Double) throws {
        guard x.count == y.count else {
            throw TensorError.shapeMismatch(operation: "accumulate", shapes: [x.shape, y.shape], reason: "element counts differ")
        }
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(x, as: type, "accumulate") { px in
                try modify(y, as: type, "accumulate") { py in
                    let a = T(alpha)
                    parallelFor(x.count, grain: 1 << 15) { r in for i in r { py[i] += a * px[i] } }
                }
            }
        }
        try (computeKind(for: y.dtype, operation: "accumulate") == .double ? run(Double.self) : run(Float.self))
    }

    public func trustRatioStep(_ x: Tensor, update: Tensor, parameterSquares: Tensor, updateSquares: Tensor, rate: Double) throws {
        guard parameterSquares.count == 1, updateSquares.count == 1 else {
            throw TensorError.shapeMismatch(
                operation: "trustRatioStep", shapes: [parameterSquares.shape, updateSquares.shape], reason: "the squares are one-element tensors")
        }
        let (p, u) = (try doubles(parameterSquares)[0], try doubles(updateSquares)[0])
        try accumulate(update, into: x, alpha: -rate * (p > 0 && u > 0 ? (p / u).squareRoot() : 1))
    }

    public func applyMask(_ x: Tensor, mask: Tensor) throws -> Tensor {
        try OperandChecks.dtype(mask, .uint8, "applyMask")
        guard mask.shape == x.shape else {
            throw TensorError.shapeMismatch(operation: "applyMask", shapes: [x.shape, mask.shape], reason: "mask must have x's shape")
        }
        let pm = try hostPointer(mask, "applyMask").assumingMemoryBound(to: UInt8.self)
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(x, as: type, "applyMask") { px in
                try produce(x.shape, dtype: x.dtype, as: type) { out in
                    parallelFor(x.count, grain: 1 << 15) { r in for i in r { out[i] = pm[i] != 0 ? px[i] : 0 } }
                }
            }
        }
        return try (computeKind(for: x.dtype, operation: "applyMask") == .double ? run(Double.self) : run(Float.self))
    }

    public func dropout(_ x: Tensor, probability: Double, seed: UInt64) throws -> Tensor {
        try DropoutMask.check(probability, "dropout")
        let threshold = DropoutMask.threshold(probability: probability)
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            let scale = T(1 / (1 - probability))
            return try read(x, as: type, "dropout") { px in
                try produce(x.shape, dtype: x.dtype, as: type) { out in
                    parallelFor(x.count, grain: 1 << 15) { r in
                        for i in r { out[i] = DropoutMask.keeps(seed: seed, index: i, threshold: threshold) ? px[i] * scale : 0 }
                    }
                }
            }
        }
        return try (computeKind(for: x.dtype, operation: "dropout") == .double ? run(Double.self) : run(Float.self))
    }

    public func activation(_ x: Tensor, _ kind: Activation) throws -> Tensor {
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(x, as: type, "activation") { px in
                try produce(x.shape, dtype: x.dtype, as: type) { out in
                    parallelFor(x.count, grain: 1 << 13) { r in
                        switch kind {
                        case .gelu: for i in r { out[i] = ActivationMath.gelu(px[i]) }
                        case .relu: for i in r { out[i] = max(px[i], 0) }
                        case .silu: for i in r { out[i] = px[i] * ActivationMath.sigmoid(px[i]) }
                        case .tanh: for i in r { out[i] = T.tanh(px[i]) }
                        case .geluExact: for i in r { out[i] = ActivationMath.geluExact(px[i]) }
                        }
                    }
                }
            }
        }
        return try (computeKind(for: x.dtype, operation: "activation") == .double ? run(Double.self) : run(Float.self))
    }

    public func activationBackward(_ x: Tensor, gradient dy: Tensor, _ kind: Activation) throws -> Tensor {
        guard x.shape == dy.shape else {
            throw TensorError.shapeMismatch(operation: "activationBackward", shapes: [x.shape, dy.shape], reason: "x and dy must match")
        }
        try OperandChecks.sameDType([x, dy], "activationBackward")
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(x, as: type, "activationBackward") { px in
                try read(dy, as: type, "activationBackward") { pdy in
                    try produce(x.shape, dtype: x.dtype, as: type) { out in
                        parallelFor(x.count, grain: 1 << 13) { r in
                            switch kind {
                            case .gelu: for i in r { out[i] = pdy[i] * ActivationMath.geluDerivative(px[i]) }
                            case .relu: for i in r { out[i] = px[i] > 0 ? pdy[i] : 0 }
                            case .silu:
                                for i in r {
                                    let s = ActivationMath.sigmoid(px[i])
                                    out[i] = pdy[i] * s * (1 + px[i] * (1 - s))
                                }
                            case .tanh:
                                for i in r {
                                    let t = T.tanh(px[i])
                                    out[i] = pdy[i] * (1 - t * t)
                                }
                            case .geluExact: for i in r { out[i] = pdy[i] * ActivationMath.geluExactDerivative(px[i]) }
                            }
                        }
                    }
                }
            }
        }
        return try (computeKind(for: x.dtype, operation: "activationBackward") == .double ? run(Double.self) : run(Float.self))
    }
}

/// Scalar forms of the activations, shared by forward and backward.
enum ActivationMath {
    @inline(__always) static func gelu<T: CPUFloat>(_ x: T) -> T {
        let inner = T(0.7978845608028654) * (x + T(0.044715) * x * x * x)  // sqrt(2/π)·(x + 0.044715x³)
        return T(0.5) * x * (1 + tanh(inner))
    }

    @inline(__always) static func geluDerivative<T: CPUFloat>(_ x: T) -> T {
        let c = T(0.7978845608028654)
        let t = tanh(c * (x + T(0.044715) * x * x * x))
        return T(0.5) * (1 + t) + T(0.5) * x * (1 - t * t) * c * (1 + 3 * T(0.044715) * x * x)
    }

    @inline(__always) static func sigmoid<T: CPUFloat>(_ x: T) -> T { 1 / (1 + T.vectorExp(-x)) }

    /// x·Φ(x) = x·(1 + erf(x/√2))/2, and its derivative Φ(x) + x·φ(x).
    @inline(__always) static func geluExact<T: CPUFloat>(_ x: T) -> T { T(0.5) * x * (1 + T.erf(x * T(0.7071067811865476))) }
    @inline(__always) static func geluExactDerivative<T: CPUFloat>(_ x: T) -> T {
        T(0.5) * (1 + T.erf(x * T(0.7071067811865476))) + x * T.exp(T(-0.5) * x * x) * T(0.3989422804014327)
    }

    /// tanh through one `exp`: libm's tanhf (via expm1f) took a quarter of a CPU training step. Near 0 the
    /// result has an absolute error of a few ulp of 1, which is what GELU's `1 + tanh` can resolve anyway;
    /// large |u| saturate to ±1.
    @inline(__always) static func tanh<T: CPUFloat>(_ u: T) -> T { 1 - 2 / (T.vectorExp(2 * u) + 1) }
}
