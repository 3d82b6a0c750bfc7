import RealModule

extension CPUBackend {
    // y = x·rrms·w with rrms = 1/sqrt(mean(x²) + ε); x, y [rows, C]; w [C]; rrms [rows]. With a residual, x is
    // first replaced by x + residual.
    public func rmsNorm(_ x: Tensor, adding residual: Tensor?, weight: Tensor, epsilon: Float) throws -> RMSNormOutput {
        try OperandChecks.residual(residual, like: x, "rmsNorm")
        let sum = try residual.map { try add(x, $0) }
        let x = sum ?? x
        let (rows, columns) = try OperandChecks.rmsNorm(x, weight: weight)
        let statsDType: DType = x.dtype == .float64 ? .float64 : .float32
        let rrms = try newTensor([rows], dtype: statsDType)
        let output = try newTensor(x.shape, dtype: x.dtype)
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
        return RMSNormOutput(output: output, reciprocalRMS: rrms, sum: sum)
    }

    // dx = rrms·(g − x̂·mean(g⊙x̂)) (+ residualGradient) with g = dy⊙w, x̂ = x·rrms; dw = Σ_rows dy⊙x̂.
    public func rmsNormBackward(
        _ dy: Tensor, input x: Tensor, weight: Tensor, saved: RMSNormOutput, addingGradient residualGradient: Tensor?
    ) throws -> RMSNormGradients {
        let (rows, columns) = try OperandChecks.rmsNormBackward(dy, input: x, weight: weight, saved: saved)
        try OperandChecks.residual(residualGradient, like: x, "rmsNormBackward")
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
                            if let residualGradient { try accumulate(residualGradient, into: dx, alpha: 1) }
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
                            let position = Double(layout.position(ofRow: row))
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

    // Per (batch, head), queries in blocks of `attentionBlock` rows: S = scale·Q·Kᵀ over the keys the block
    // can see and O = P·V run as GEMMs on the SIMD kernel; the softmax between them is one pass per row. Only
    // a block × Tk score tile exists at a time (no Tq × Tk matrix).
    public func decodeAttention(
        query: Tensor, keys: Tensor, values: Tensor, starts: [Int], lengths: [Int], shape s: DecodeAttentionShape
    ) throws -> Tensor {
        try OperandChecks.decodeAttention(query: query, keys: keys, values: values, starts: starts, lengths: lengths, shape: s)
        let (q, k, v) = (try doubles(query), try doubles(keys), try doubles(values))
        let (hq, hkv, d) = (s.queryHeads, s.keyValueHeads, s.headDimension)
        let scale = 1 / Double(d).squareRoot()
        var out = [Double](repeating: 0, count: query.count)
        for (sequence, (first, count)) in zip(starts, lengths).enumerated() {
            for h in 0..<hq {
                let kh = h / (hq / hkv), queryBase = (sequence * hq + h) * d
                let scores = (0..<count).map { j -> Double in
                    let keyBase = (first + j) * hkv * d + kh * d
                    return (0..<d).reduce(0) { $0 + q[queryBase + $1] * k[keyBase + $1] } * scale
                }
                let top = scores.max()!
                let weights = scores.map { Double.exp($0 - top) }
                let total = weights.reduce(0, +)
                for (j, weight) in weights.enumerated() {
                    let valueBase = (first + j) * hkv * d + kh * d
                    for c in 0..<d { out[queryBase + c] += weight / total * v[valueBase + c] }
                }
            }
        }
        return try tensor(out, shape: query.shape, dtype: query.dtype)
    }

    public func takesPackedAttention(_ shape: AttentionShape, dtype: DType) -> Bool { true }

    public func attention(query: Tensor, key: Tensor, value: Tensor, shape s: AttentionShape) throws -> AttentionOutput {
        try OperandChecks.attention(query: query, key: key, value: value, shape: s)
        let statsDType: DType = query.dtype == .float64 ? .float64 : .float32
        let output = try newTensor(query.shape, dtype: query.dtype)
        let logSumExp = try newTensor([s.queryRows, s.queryHeads], dtype: statsDType)
        let d = s.headDimension, qStride = s.queryHeads * d, kStride = s.keyValueHeads * d
        let layout = s.rowLayout()  // (rows no sequence owns, with packed rows, stay zero)
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(query, as: type, "attention") { pq in
                try read(key, as: type, "attention") { pk in
                    try read(value, as: type, "attention") { pv in
                        try modify(output, as: type, "attention") { po in
                            try modify(logSumExp, as: type, "attention") { pl in
                                parallelFor(s.batch * s.queryHeads, grain: 1) { range in
                                    let tile = UnsafeMutablePointer<T>.allocate(capacity: max(attentionBlock * s.keyLength, 1))
                                    defer { tile.deallocate() }
                                    for task in range {
                                        let (b, h) = (task / s.queryHeads, task % s.queryHeads)
                                        let kvHead = h / s.groupSize
                                        let (kBase, vBase) = (pk + layout[b].keyStart * kStride + kvHead * d, pv + layout[b].keyStart * kStride + kvHead * d)
                                        for i0 in stride(from: 0, to: layout[b].queries, by: attentionBlock) {
                                            let rows = min(attentionBlock, layout[b].queries - i0)
                                            let keys = s.visibleKeys(batch: b, query: i0 + rows - 1)
                                            let row0 = (layout[b].queryStart + i0) * qStride + h * d
                                            rawGEMM(false, true, rows, keys, d, T(s.scale), pq + row0, qStride, kBase, kStride, 0, tile, keys, nil)
                                            for r in 0..<rows {
                                                let scores = tile + r * keys, visible = s.visibleKeys(batch: b, query: i0 + r)
                                                var maximum = -T.infinity
                                                for j in 0..<visible { maximum = max(maximum, scores[j]) }
                                                var total: T = 0
                                                for j in 0..<visible {
                                                    scores[j] = T.vectorExp(scores[j] - maximum)
                                                    total += scores[j]
                                                }
                                                for j in visible..<keys { scores[j] = 0 }
                                                let inverse = 1 / total
                                                for j in 0..<visible { scores[j] *= inverse }
                                                pl[(layout[b].queryStart + i0 + r) * s.queryHeads + h] = maximum + T.log(total)
                                                if let dropout = s.dropout {  // O = (P ⊙ Z)·V; the log-sum-exp stays P's
                                                    let (first, threshold, kept) = (s.dropoutIndex(batch: b, head: h, query: i0 + r), dropout.threshold, T(dropout.keptScale))
                                                    for j in 0..<visible {
                                                        scores[j] *= DropoutMask.keeps(seed: dropout.seed, index: first + j, threshold: threshold) ? kept : 0
                                                    }
                                                }
                                            }
                                            rawGEMM(false, false, rows, d, keys, 1, tile, keys, vBase, kStride, 0, po + row0, qStride, nil)
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

    // FlashAttention-2's backward with the products as GEMMs, per (batch, KV head) so that task alone writes
    // its dK and dV: for each query head of the group and each block of queries, P = exp(scale·Q·Kᵀ − lse)
    // is recomputed, dP = dO·Vᵀ, dS = P·(dP − rowsum(dO·O))·scale, then dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO.
    public func attentionBackward(
        _ dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, saved: AttentionOutput, shape s: AttentionShape
    ) throws -> AttentionGradients {
        try OperandChecks.attentionBackward(dOutput, query: query, key: key, value: value, saved: saved, shape: s)
        let d = s.headDimension, qStride = s.queryHeads * d, kStride = s.keyValueHeads * d
        let layout = s.rowLayout()
        let dq = try newTensor(query.shape, dtype: query.dtype)
        let dk = try newTensor(key.shape, dtype: key.dtype)
        let dv = try newTensor(value.shape, dtype: value.dtype)
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
                                                    let tileSize = max(attentionBlock * s.keyLength, 1)
                                                    let probabilities = UnsafeMutablePointer<T>.allocate(capacity: tileSize)
                                                    let scoreGradient = UnsafeMutablePointer<T>.allocate(capacity: tileSize)
                                                    defer {
                                                        probabilities.deallocate()
                                                        scoreGradient.deallocate()
                                                    }
                                                    for task in range {
                                                        let (b, kvHead) = (task / s.keyValueHeads, task % s.keyValueHeads)
                                                        let kv = layout[b].keyStart * kStride + kvHead * d
                                                        for g in 0..<s.groupSize {
                                                            let h = kvHead * s.groupSize + g
                                                            for i0 in stride(from: 0, to: layout[b].queries, by: attentionBlock) {
                                                                let rows = min(attentionBlock, layout[b].queries - i0)
                                                                let keys = s.visibleKeys(batch: b, query: i0 + rows - 1)
                                                                let row0 = (layout[b].queryStart + i0) * qStride + h * d
                                                                let (p, ds) = (probabilities, scoreGradient)
                                                                rawGEMM(false, true, rows, keys, d, T(s.scale), pq + row0, qStride, pk + kv, kStride, 0, p, keys, nil)
                                                                rawGEMM(false, true, rows, keys, d, 1, pdo + row0, qStride, pv + kv, kStride, 0, ds, keys, nil)
                                                                for r in 0..<rows {
                                                                    let visible = s.visibleKeys(batch: b, query: i0 + r)
                                                                    let lse = pl[(layout[b].queryStart + i0 + r) * s.queryHeads + h]
                                                                    let delta = dotProduct(pdo + row0 + r * qStride, po + row0 + r * qStride, d)
                                                                    let (pRow, dsRow) = (p + r * keys, ds + r * keys)
                                                                    if let dropout = s.dropout {
                                                                        // dO·Vᵀ is the gradient of P ⊙ Z: dS = P·(Z·dO·Vᵀ − δ)·scale, and dV takes P ⊙ Z.
                                                                        let first = s.dropoutIndex(batch: b, head: h, query: i0 + r)
                                                                        let (threshold, kept) = (dropout.threshold, T(dropout.keptScale))
                                                                        for j in 0..<visible {
                                                                            let z = DropoutMask.keeps(seed: dropout.seed, index: first + j, threshold: threshold) ? kept : 0
                                                                            pRow[j] = T.vectorExp(pRow[j] - lse)
                                                                            dsRow[j] = pRow[j] * (z * dsRow[j] - delta) * T(s.scale)
                                                                            pRow[j] *= z
                                                                        }
                                                                    } else {
                                                                        for j in 0..<visible {
                                                                            pRow[j] = T.vectorExp(pRow[j] - lse)
                                                                            dsRow[j] = pRow[j] * (dsRow[j] - delta) * T(s.scale)
                                                                        }
                                                                    }
                                                                    for j in visible..<keys {
                                                                        pRow[j] = 0
                                                                        dsRow[j] = 0
                                                                    }
                                                                }
                                                                rawGEMM(false, false, rows, d, keys, 1, ds, keys, pk + kv, kStride, 0, pdq + row0, qStride, nil)
                                                                rawGEMM(true, false, keys, d, rows, 1, ds, keys, pq + row0, qStride, 1, pdk + kv, kStride, nil)
                                                                rawGEMM(true, false, keys, d, rows, 1, p, keys, pdo + row0, qStride, 1, pdv + kv, kStride, nil)
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

/// Query rows per block in the CPU attention: the block's score tile (block × Tk) stays cache-sized.
let attentionBlock = 64

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
    /// Keys query `i` of batch element `b` may attend to (a prefix of the key sequence: up to itself when causal, up
    /// to the element's padding).
    @inline(__always)
    func visibleKeys(batch b: Int, query i: Int) -> Int {
        let limit = causal ? keyLength - queryLength + i + 1 : keyLength
        guard let keyLengths else { return limit }
        return min(limit, keyLengths[b])
    }
}
