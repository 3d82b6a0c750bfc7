extension CPUBackend {
    // y = x·rrms·w with rrms = 1/sqrt(mean(x²) + ε); x, y [rows, C]; w [C]; rrms [rows].
    public func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) throws -> RMSNormOutput {
        let (rows, columns) = try OperandChecks.rmsNorm(x, weight: weight)
        let statsDType: DType = x.dtype == .float64 ? .float64 : .float32
        let rrms = newTensor([rows], dtype: statsDType)
        let output = newTensor(x.shape, dtype: x.dtype)
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(x, as: type, "rmsNorm") { px in
                try read(weight, as: type, "rmsNorm") { pw in
                    try modify(rrms, as: type, "rmsNorm") { pr in
                        try modify(output, as: type, "rmsNorm") { out in
                            parallelFor(rows, grain: max(1, 4096 / max(columns, 1))) { r in
                                for row in r {
                                    let line = px + row * columns
                                    var squares: T = 0
                                    for j in 0..<columns { squares += line[j] * line[j] }
                                    let s = 1 / (squares / T(columns) + T(epsilon)).squareRoot()
                                    pr[row] = s
                                    for j in 0..<columns { out[row * columns + j] = line[j] * s * pw[j] }
                                }
                            }
                        }
                    }
                }
            }
        }
        try (computeKind(for: x.dtype, operation: "rmsNorm") == .double ? run(Double.self) : run(Float.self))
        return RMSNormOutput(output: output, reciprocalRMS: rrms)
    }

    // dx = rrms·(g − x̂·mean(g⊙x̂)) with g = dy⊙w, x̂ = x·rrms; dw = Σ_rows dy⊙x̂.
    public func rmsNormBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, saved: RMSNormOutput) throws -> RMSNormGradients {
        let (rows, columns) = try OperandChecks.rmsNormBackward(dy, input: x, weight: weight, saved: saved)
        func run<T: CPUFloat>(_ type: T.Type) throws -> RMSNormGradients {
            try read(dy, as: type, "rmsNormBackward") { pdy in
                try read(x, as: type, "rmsNormBackward") { px in
                    try read(weight, as: type, "rmsNormBackward") { pw in
                        try read(saved.reciprocalRMS, as: type, "rmsNormBackward") { pr in
                            let dx = try produce(x.shape, dtype: x.dtype, as: type) { out in
                                parallelFor(rows, grain: max(1, 4096 / max(columns, 1))) { r in
                                    for row in r {
                                        let base = row * columns
                                        let s = pr[row]
                                        var dot: T = 0
                                        for j in 0..<columns { dot += pdy[base + j] * pw[j] * px[base + j] * s }
                                        dot /= T(columns)
                                        for j in 0..<columns {
                                            out[base + j] = s * (pdy[base + j] * pw[j] - px[base + j] * s * dot)
                                        }
                                    }
                                }
                            }
                            let dweight = try produce([columns], dtype: x.dtype, as: type) { out in
                                parallelFor(columns, grain: 256) { r in
                                    for row in 0..<rows {
                                        let base = row * columns
                                        for j in r { out[j] += pdy[base + j] * px[base + j] * pr[row] }
                                    }
                                }
                            }
                            return RMSNormGradients(input: dx, weight: dweight)
                        }
                    }
                }
            }
        }
        return try (computeKind(for: x.dtype, operation: "rmsNormBackward") == .double ? run(Double.self) : run(Float.self))
    }

    public func rotaryEmbedding(_ x: Tensor, layout: RotaryLayout, inverse: Bool) throws -> Tensor {
        let heads = try OperandChecks.rotaryEmbedding(x, layout: layout)
        let (rows, columns) = try x.asMatrix(operation: "rotaryEmbedding")
        let d = layout.headDimension, half = d / 2
        // Angles in Double: the rotation is exact to the element type however long the sequence.
        let inverseFrequencies = (0..<half).map { Double.pow(Double(layout.base), -2 * Double($0) / Double(d)) }
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(x, as: type, "rotaryEmbedding") { px in
                try produce(x.shape, dtype: x.dtype, as: type) { out in
                    parallelFor(rows, grain: max(1, 4096 / max(columns, 1))) { r in
                        for row in r {
                            let position = Double(layout.positionOffset + row % layout.sequenceLength)
                            for i in 0..<half {
                                let angle = position * inverseFrequencies[i]
                                let c = T(Double.cos(angle)), s = T(inverse ? -Double.sin(angle) : Double.sin(angle))
                                for h in 0..<heads {
                                    let base = row * columns + h * d
                                    let x1 = px[base + i], x2 = px[base + i + half]
                                    out[base + i] = x1 * c - x2 * s
                                    out[base + i + half] = x2 * c + x1 * s
                                }
                            }
                        }
                    }
                }
            }
        }
        return try (computeKind(for: x.dtype, operation: "rotaryEmbedding") == .double ? run(Double.self) : run(Float.self))
    }

    // One (batch, head, query) row at a time: scores over the visible keys, online in one buffer of Tk.
    public func attention(query: Tensor, key: Tensor, value: Tensor, shape s: AttentionShape) throws -> AttentionOutput {
        try OperandChecks.attention(query: query, key: key, value: value, shape: s)
        let statsDType: DType = query.dtype == .float64 ? .float64 : .float32
        let output = newTensor(query.shape, dtype: query.dtype)
        let logSumExp = newTensor([s.batch * s.queryLength, s.queryHeads], dtype: statsDType)
        let d = s.headDimension, qStride = s.queryHeads * d, kStride = s.keyValueHeads * d
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(query, as: type, "attention") { pq in
                try read(key, as: type, "attention") { pk in
                    try read(value, as: type, "attention") { pv in
                        try modify(output, as: type, "attention") { po in
                            try modify(logSumExp, as: type, "attention") { pl in
                                let tasks = s.batch * s.queryHeads
                                parallelFor(tasks, grain: 1) { range in
                                    let scores = UnsafeMutablePointer<T>.allocate(capacity: max(s.keyLength, 1))
                                    defer { scores.deallocate() }
                                    for task in range {
                                        let (b, h) = (task / s.queryHeads, task % s.queryHeads)
                                        let kvHead = h / s.groupSize
                                        for i in 0..<s.queryLength {
                                            let visible = s.visibleKeys(query: i)
                                            let qRow = pq + (b * s.queryLength + i) * qStride + h * d
                                            var maximum = -T.infinity
                                            for j in 0..<visible {
                                                let kRow = pk + (b * s.keyLength + j) * kStride + kvHead * d
                                                scores[j] = dotProduct(qRow, kRow, d) * T(s.scale)
                                                maximum = max(maximum, scores[j])
                                            }
                                            // Probabilities in one pass the compiler vectorises, then P·V.
                                            for j in 0..<visible { scores[j] = T.vectorExp(scores[j] - maximum) }
                                            var total: T = 0
                                            let oRow = po + (b * s.queryLength + i) * qStride + h * d
                                            for e in 0..<d { oRow[e] = 0 }
                                            for j in 0..<visible {
                                                total += scores[j]
                                                addScaled(scores[j], pv + (b * s.keyLength + j) * kStride + kvHead * d, to: oRow, d)
                                            }
                                            for e in 0..<d { oRow[e] /= total }
                                            pl[(b * s.queryLength + i) * s.queryHeads + h] = maximum + T.log(total)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        try (computeKind(for: query.dtype, operation: "attention") == .double ? run(Double.self) : run(Float.self))
        return AttentionOutput(output: output, logSumExp: logSumExp)
    }

    // FlashAttention-2's backward: p = exp(score − lse), dS = p·(dO·V − dO·O); one task per (batch, KV head)
    // so that task alone writes its dK, dV and the dQ of the query heads sharing it.
    public func attentionBackward(
        _ dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, saved: AttentionOutput, shape s: AttentionShape
    ) throws -> AttentionGradients {
        try OperandChecks.attentionBackward(dOutput, query: query, key: key, value: value, saved: saved, shape: s)
        let d = s.headDimension, qStride = s.queryHeads * d, kStride = s.keyValueHeads * d
        let dq = newTensor(query.shape, dtype: query.dtype)
        let dk = newTensor(key.shape, dtype: key.dtype)
        let dv = newTensor(value.shape, dtype: value.dtype)
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(dOutput, as: type, "attentionBackward") { pdo in
                try read(query, as: type, "attentionBackward") { pq in
                    try read(key, as: type, "attentionBackward") { pk in
                        try read(value, as: type, "attentionBackward") { pv in
                            try read(saved.output, as: type, "attentionBackward") { po in
                                try read(saved.logSumExp, as: type, "attentionBackward") { pl in
                                    try modify(dq, as: type, "attentionBackward") { pdq in
                                        try modify(dk, as: type, "attentionBackward") { pdk in
                                            try modify(dv, as: type, "attentionBackward") { pdv in
                                                parallelFor(s.batch * s.keyValueHeads, grain: 1) { range in
                                                    let probabilities = UnsafeMutablePointer<T>.allocate(capacity: max(s.keyLength, 1))
                                                    defer { probabilities.deallocate() }
                                                    for task in range {
                                                        let (b, kvHead) = (task / s.keyValueHeads, task % s.keyValueHeads)
                                                        for g in 0..<s.groupSize {
                                                            let h = kvHead * s.groupSize + g
                                                            for i in 0..<s.queryLength {
                                                                let row = (b * s.queryLength + i) * qStride + h * d
                                                                let (qRow, doRow, oRow, dqRow) = (pq + row, pdo + row, po + row, pdq + row)
                                                                let delta = dotProduct(doRow, oRow, d)
                                                                let lse = pl[(b * s.queryLength + i) * s.queryHeads + h]
                                                                let visible = s.visibleKeys(query: i)
                                                                for j in 0..<visible {
                                                                    let kRow = pk + (b * s.keyLength + j) * kStride + kvHead * d
                                                                    probabilities[j] = dotProduct(qRow, kRow, d) * T(s.scale) - lse
                                                                }
                                                                for j in 0..<visible { probabilities[j] = T.vectorExp(probabilities[j]) }
                                                                for j in 0..<visible {
                                                                    let kv = (b * s.keyLength + j) * kStride + kvHead * d
                                                                    let (kRow, vRow) = (pk + kv, pv + kv)
                                                                    let dp = dotProduct(doRow, vRow, d)
                                                                    let p = probabilities[j]
                                                                    let ds = p * (dp - delta) * T(s.scale)
                                                                    // Three separate loops: one interleaved loop over three
                                                                    // outputs stayed scalar (with overflow checks).
                                                                    addScaled(ds, kRow, to: dqRow, d)
                                                                    addScaled(ds, qRow, to: pdk + kv, d)
                                                                    addScaled(p, doRow, to: pdv + kv, d)
                                                                }
                                                            }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        try (computeKind(for: query.dtype, operation: "attentionBackward") == .double ? run(Double.self) : run(Float.self))
        return AttentionGradients(query: dq, key: dk, value: dv)
    }
}

/// `y[i] += alpha·x[i]` for `i < n`, a loop simple enough to vectorise.
@inline(__always)
func addScaled<T: CPUFloat>(_ alpha: T, _ x: UnsafePointer<T>, to y: UnsafeMutablePointer<T>, _ n: Int) {
    for i in 0..<n { y[i] += alpha * x[i] }
}

/// `Σ a[i]·b[i]` with four independent partial sums, so the loop is not one long chain of dependent adds.
@inline(__always)
func dotProduct<T: CPUFloat>(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ n: Int) -> T {
    var (s0, s1, s2, s3): (T, T, T, T) = (0, 0, 0, 0)
    var i = 0
    while i + 4 <= n {
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
        i += 4
    }
    while i < n {
        s0 += a[i] * b[i]
        i += 1
    }
    return (s0 + s1) + (s2 + s3)
}

extension AttentionShape {
    /// Keys query `i` may attend to (a prefix of the key sequence).
    @inline(__always)
    func visibleKeys(query i: Int) -> Int { causal ? keyLength - queryLength + i + 1 : keyLength }
}
