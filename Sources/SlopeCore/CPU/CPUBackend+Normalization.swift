extension CPUBackend {
    // softmax: x, y [rows, C], over C.
    public func softmax(_ x: Tensor) throws -> Tensor {
        let (rows, columns) = try x.asMatrix(operation: "softmax")
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(x, as: type, "softmax") { px in
                try produce(x.shape, dtype: x.dtype, as: type) { out in
                    parallelFor(rows, grain: max(1, 4096 / max(columns, 1))) { r in
                        for row in r { softmaxRow(px + row * columns, out + row * columns, columns) }
                    }
                }
            }
        }
        return try (computeKind(for: x.dtype, operation: "softmax") == .double ? run(Double.self) : run(Float.self))
    }

    // dx = y ⊙ (dy − Σ dy⊙y), rows of C.
    public func softmaxBackward(output y: Tensor, gradient dy: Tensor) throws -> Tensor {
        guard y.shape == dy.shape else {
            throw TensorError.shapeMismatch(operation: "softmaxBackward", shapes: [y.shape, dy.shape], reason: "y and dy must match")
        }
        try OperandChecks.sameDType([y, dy], "softmaxBackward")
        let (rows, columns) = try y.asMatrix(operation: "softmaxBackward")
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(y, as: type, "softmaxBackward") { py in
                try read(dy, as: type, "softmaxBackward") { pdy in
                    try produce(y.shape, dtype: y.dtype, as: type) { out in
                        parallelFor(rows, grain: max(1, 4096 / max(columns, 1))) { r in
                            for row in r {
                                let base = row * columns
                                var dot: T = 0
                                for j in 0..<columns { dot += pdy[base + j] * py[base + j] }
                                for j in 0..<columns { out[base + j] = py[base + j] * (pdy[base + j] - dot) }
                            }
                        }
                    }
                }
            }
        }
        return try (computeKind(for: y.dtype, operation: "softmaxBackward") == .double ? run(Double.self) : run(Float.self))
    }

    // y = (x − mean)·rstd·weight + bias; x, y [rows, C]; weight, bias [C]; mean, rstd [rows]. With a residual,
    // x is first replaced by x + residual, the residual dropped first when asked (the reference composes the ops;
    // CUDA fuses them).
    public func layerNorm(
        _ x: Tensor, adding residual: Tensor?, droppingResidual dropout: SeededDropout?, weight: Tensor, bias: Tensor, epsilon: Float
    ) throws -> LayerNormOutput {
        try OperandChecks.residual(residual, like: x, "layerNorm")
        try OperandChecks.residualDropout(dropout, residual: residual, "layerNorm")
        let sum = try residual.map { residual in
            try add(x, dropout.map { try self.dropout(residual, probability: $0.probability, seed: $0.seed) } ?? residual)
        }
        let x = sum ?? x
        let (rows, columns) = try OperandChecks.layerNorm(x, weight: weight, bias: bias)
        let statsDType: DType = x.dtype == .float64 ? .float64 : .float32
        let mean = try newTensor([rows], dtype: statsDType)
        let rstd = try newTensor([rows], dtype: statsDType)
        let output = try newTensor(x.shape, dtype: x.dtype)
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(x, as: type, "layerNorm") { px in
                try read(weight, as: type, "layerNorm") { pw in
                    try read(bias, as: type, "layerNorm") { pb in
                        try modify(mean, as: type, "layerNorm") { pmean in
                            try modify(rstd, as: type, "layerNorm") { prstd in
                                try modify(output, as: type, "layerNorm") { out in
                                    parallelFor(rows, grain: max(1, 4096 / max(columns, 1))) { r in
                                        for row in r {
                                            let line = px + row * columns
                                            var m: T = 0
                                            for j in 0..<columns { m += line[j] }
                                            m /= T(columns)
                                            var variance: T = 0
                                            for j in 0..<columns { variance += (line[j] - m) * (line[j] - m) }
                                            variance /= T(columns)
                                            let s = 1 / (variance + T(epsilon)).squareRoot()
                                            pmean[row] = m
                                            prstd[row] = s
                                            let o = out + row * columns
                                            for j in 0..<columns { o[j] = (line[j] - m) * s * pw[j] + pb[j] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        try (computeKind(for: x.dtype, operation: "layerNorm") == .double ? run(Double.self) : run(Float.self))
        return LayerNormOutput(output: output, mean: mean, reciprocalStd: rstd, sum: sum)
    }
    // dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)) (+ residualGradient) with ĝ = dy⊙weight; dweight = Σ dy⊙x̂;
    // dbias = Σ dy.
    public func layerNormBackward(
        _ dy: Tensor, input x: Tensor, weight: Tensor, saved: LayerNormOutput, addingGradient residualGradient: Tensor?,
        droppingInputGradient dropout: SeededDropout?
    ) throws -> LayerNormGradients {
        let (rows, columns) = try OperandChecks.layerNormBackward(dy, input: x, weight: weight, saved: saved)
        try OperandChecks.residual(residualGradient, like: x, "layerNormBackward")
        if let dropout { try DropoutMask.check(dropout.probability, "layerNormBackward") }
        func run<T: CPUFloat>(_ type: T.Type) throws -> LayerNormGradients {
            try read(dy, as: type, "layerNormBackward") { pdy in
                try read(x, as: type, "layerNormBackward") { px in
                    try read(weight, as: type, "layerNormBackward") { pw in
                        try read(saved.mean, as: type, "layerNormBackward") { pmean in
                            try read(saved.reciprocalStd, as: type, "layerNormBackward") { prstd in
                                let dx = try produce(x.shape, dtype: x.dtype, as: type) { out in
                                    parallelFor(rows, grain: max(1, 4096 / max(columns, 1))) { r in
                                        for row in r {
                                            let base = row * columns
                                            let (m, s) = (pmean[row], prstd[row])
                                            var meanG: T = 0
                                            var meanGX: T = 0
                                            for j in 0..<columns {
                                                let g = pdy[base + j] * pw[j]
                                                meanG += g
                                                meanGX += g * (px[base + j] - m) * s
                                            }
                                            meanG /= T(columns)
                                            meanGX /= T(columns)
                                            for j in 0..<columns {
                                                let xhat = (px[base + j] - m) * s
                                                out[base + j] = s * (pdy[base + j] * pw[j] - meanG - xhat * meanGX)
                                            }
                                        }
                                    }
                                }
                                let dbias = try sumRows(dy)
                                let dweight = try produce([columns], dtype: x.dtype, as: type) { out in
                                    parallelFor(columns, grain: 256) { r in
                                        for row in 0..<rows {
                                            let base = row * columns
                                            let (m, s) = (pmean[row], prstd[row])
                                            for j in r { out[j] += pdy[base + j] * (px[base + j] - m) * s }
                                        }
                                    }
                                }
                                if let residualGradient { try accumulate(residualGradient, into: dx, alpha: 1) }
                                let dropped = try dropout.map { try self.dropout(dx, probability: $0.probability, seed: $0.seed) }
                                return LayerNormGradients(input: dx, weight: dweight, bias: dbias, droppedInput: dropped)
                            }
                        }
                    }
                }
            }
        }
        return try (computeKind(for: x.dtype, operation: "layerNormBackward") == .double ? run(Double.self) : run(Float.self))
    }
}

/// Numerically stable softmax of one row of `n`.
@inline(__always)
func softmaxRow<T: CPUFloat>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int) {
    var maximum = -T.infinity
    for j in 0..<n { maximum = max(maximum, x[j]) }
    var total: T = 0
    for j in 0..<n {
        let e = T.exp(x[j] - maximum)
        y[j] = e
        total += e
    }
    let inverse = 1 / total
    for j in 0..<n { y[j] *= inverse }
}
