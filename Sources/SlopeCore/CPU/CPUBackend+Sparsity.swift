import CSlopeCPU

extension CPUBackend {
    /// Where the groups of a `[rows, columns]` matrix lie: group `i` starts at `base(i)` and its M
    /// elements are `stride` apart.
    private struct GroupLayout {
        let count: Int
        let stride: Int
        let base: (Int) -> Int

        init(rows: Int, columns: Int, m: Int, direction: PruneDirection) {
            switch direction {
            case .rowWise:
                let perRow = columns / m
                count = rows * perRow
                stride = 1
                base = { group in (group / perRow) * columns + (group % perRow) * m }
            case .columnWise:
                count = rows / m * columns
                stride = columns
                base = { group in (group / columns) * m * columns + group % columns }
            }
        }
    }

    private func checkSparseOperand(_ x: Tensor, _ pattern: NMPattern, _ direction: PruneDirection, _ operation: String) throws -> (Int, Int) {
        guard x.rank == 2 else {
            throw TensorError.shapeMismatch(operation: operation, shapes: [x.shape], reason: "expected a matrix")
        }
        let (rows, columns) = (x.shape[0], x.shape[1])
        switch direction {
        case .rowWise: try pattern.checkDivisible(columns, dimension: "the row length (columns)", operation: operation)
        case .columnWise: try pattern.checkDivisible(rows, dimension: "the column length (rows)", operation: operation)
        }
        return (rows, columns)
    }

    public func pruneMask(_ x: Tensor, pattern: NMPattern, direction: PruneDirection, within: Tensor?) throws -> Tensor {
        let (rows, columns) = try checkSparseOperand(x, pattern, direction, "pruneMask")
        if let within {
            try OperandChecks.dtype(within, .uint8, "pruneMask")
            try OperandChecks.shape(within, x.shape, "pruneMask", "the candidate mask")
        }
        let candidates = try within.map { UnsafePointer(try hostPointer($0, "pruneMask").assumingMemoryBound(to: UInt8.self)) }
        let result = try newTensor(x.shape, dtype: .uint8)
        let out = try hostPointer(result, "pruneMask").assumingMemoryBound(to: UInt8.self)
        let groups = GroupLayout(rows: rows, columns: columns, m: pattern.m, direction: direction)
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(x, as: type, "pruneMask") { p in
                parallelFor(groups.count, grain: 4096) { r in
                    for group in r {
                        let base = groups.base(group)
                        var taken = 0  // bit p set once position p is kept
                        for _ in 0..<pattern.n {
                            var best = -1
                            var bestMagnitude: T = 0
                            for position in 0..<pattern.m where taken & (1 << position) == 0 {
                                let offset = base + position * groups.stride
                                if let candidates, candidates[offset] == 0 { continue }
                                let magnitude = abs(p[offset])
                                if best < 0 || magnitude > bestMagnitude {  // strict: ties keep the lower index
                                    best = position
                                    bestMagnitude = magnitude
                                }
                            }
                            guard best >= 0 else { break }
                            taken |= 1 << best
                            out[base + best * groups.stride] = 1
                        }
                    }
                }
            }
        }
        try (computeKind(for: x.dtype, operation: "pruneMask") == .double ? run(Double.self) : run(Float.self))
        return result
    }

    public func compress(_ x: Tensor, pattern: NMPattern, mask: Tensor?) throws -> CompressedMatrix {
        let (rows, columns) = try checkSparseOperand(x, pattern, .rowWise, "compress")
        let keep = try mask ?? pruneMask(x, pattern: pattern, direction: .rowWise, within: nil)
        try OperandChecks.dtype(keep, .uint8, "compress")
        try OperandChecks.shape(keep, x.shape, "compress", "mask")
        let pm = try hostPointer(keep, "compress").assumingMemoryBound(to: UInt8.self)
        let (n, m) = (pattern.n, pattern.m)
        let slotsPerRow = pattern.keptCount(forLength: columns)
        let indices = try newTensor([rows, slotsPerRow], dtype: .uint8)
        let pi = try hostPointer(indices, "compress").assumingMemoryBound(to: UInt8.self)
        // Positions first: kept ones, then the lowest pruned ones as zero-valued padding, ascending.
        var overfull: Int?
        for group in 0..<(rows * columns / m) {
            let base = group * m
            var chosen = 0
            var kept = 0
            for position in 0..<m where pm[base + position] != 0 {
                chosen |= 1 << position
                kept += 1
            }
            if kept > n { overfull = group; break }
            for position in 0..<m where kept < n && chosen & (1 << position) == 0 {
                chosen |= 1 << position
                kept += 1
            }
            var slot = group * n
            for position in 0..<m where chosen & (1 << position) != 0 {
                pi[slot] = UInt8(position)
                slot += 1
            }
        }
        if let overfull {
            throw TensorError.invalidArgument(
                operation: "compress",
                reason: "mask keeps more than \(n) of \(m) in row \(overfull * m / columns), group \(overfull % (columns / m))")
        }
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(x, as: type, "compress") { px in
                try produce([rows, slotsPerRow], dtype: x.dtype, as: type) { out in
                    for slot in 0..<(rows * slotsPerRow) {
                        let offset = slot / n * m + Int(pi[slot])
                        out[slot] = pm[offset] != 0 ? px[offset] : 0
                    }
                }
            }
        }
        let values = try (computeKind(for: x.dtype, operation: "compress") == .double ? run(Double.self) : run(Float.self))
        return try CompressedMatrix(rows: rows, columns: columns, pattern: pattern, values: values, indices: indices)
    }

    /// Calls `body(slot, denseOffset)` for every slot of `matrix`, rows split across threads.
    private func forEachSlot(_ matrix: CompressedMatrix, _ operation: String, _ body: (Int, Int) -> Void) throws {
        let pi = try hostPointer(matrix.indices, operation).assumingMemoryBound(to: UInt8.self)
        let (n, m) = (matrix.pattern.n, matrix.pattern.m)
        let slotsPerRow = matrix.pattern.keptCount(forLength: matrix.columns)
        parallelFor(matrix.rows, grain: max(1, 16384 / max(slotsPerRow, 1))) { rows in
            for slot in (rows.lowerBound * slotsPerRow)..<(rows.upperBound * slotsPerRow) {
                body(slot, slot / n * m + Int(pi[slot]))
            }
        }
    }

    public func decompress(_ matrix: CompressedMatrix) throws -> Tensor {
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(matrix.values, as: type, "decompress") { pv in
                try produce(matrix.shape, dtype: matrix.values.dtype, as: type) { out in
                    try forEachSlot(matrix, "decompress") { slot, offset in out[offset] = pv[slot] }
                }
            }
        }
        return try (computeKind(for: matrix.values.dtype, operation: "decompress") == .double ? run(Double.self) : run(Float.self))
    }

    public func gatherCompressed(_ dense: Tensor, layout: CompressedMatrix) throws -> Tensor {
        try OperandChecks.shape(dense, layout.shape, "gatherCompressed", "the dense matrix")
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(dense, as: type, "gatherCompressed") { pd in
                try produce(layout.values.shape, dtype: dense.dtype, as: type) { out in
                    try forEachSlot(layout, "gatherCompressed") { slot, offset in out[slot] = pd[offset] }
                }
            }
        }
        return try (computeKind(for: dense.dtype, operation: "gatherCompressed") == .double ? run(Double.self) : run(Float.self))
    }

    public func mask(of matrix: CompressedMatrix) throws -> Tensor {
        let result = try newTensor(matrix.shape, dtype: .uint8)
        let out = try hostPointer(result, "mask").assumingMemoryBound(to: UInt8.self)
        try forEachSlot(matrix, "mask") { _, offset in out[offset] = 1 }
        return result
    }

    // Y [T, R] = X [T, K] · Sᵀ (+ bias [R]), S [R, K] compressed N:M along K.
    public func sparseMatmul(_ x: Tensor, _ s: CompressedMatrix, bias: Tensor?) throws -> Tensor {
        let tokens = try OperandChecks.sparseMatmul(x, s, bias: bias)
        let output = try newTensor(Array(x.shape.dropLast()) + [s.rows], dtype: x.dtype)
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(x, as: type, "sparseMatmul") { px in
                try read(s.values, as: type, "sparseMatmul") { pv in
                    try withOptionalRead(bias, as: type, "sparseMatmul") { pbias in
                        try modify(output, as: type, "sparseMatmul") { py in
                            try sparseMatmulKernel(tokens, s, px, s.columns, pv, 0, py, s.rows, pbias)
                        }
                    }
                }
            }
        }
        try (computeKind(for: x.dtype, operation: "sparseMatmul") == .double ? run(Double.self) : run(Float.self))
        return output
    }

    /// `Y[T, S.rows] = X·Sᵀ + beta·Y (+ bias)` split over token rows across threads.
    private func sparseMatmulKernel<T: CPUFloat>(
        _ tokens: Int, _ s: CompressedMatrix, _ x: UnsafePointer<T>, _ ldx: Int, _ values: UnsafePointer<T>,
        _ beta: T, _ y: UnsafeMutablePointer<T>, _ ldy: Int, _ bias: UnsafePointer<T>?
    ) throws {
        let pi = UnsafePointer(try hostPointer(s.indices, "sparseMatmul").assumingMemoryBound(to: UInt8.self))
        let (n, m) = (s.pattern.n, s.pattern.m)
        let work = tokens * s.rows * s.columns
        parallelFor(tokens, grain: work < 1 << 17 ? tokens : 16) { r in
            let t0 = r.lowerBound
            if T.self == Float.self {
                slope_nm_spmm(
                    r.count, s.rows, s.columns, Int32(n), Int32(m),
                    UnsafeRawPointer(x + t0 * ldx).assumingMemoryBound(to: Float.self), ldx,
                    UnsafeRawPointer(values).assumingMemoryBound(to: Float.self), pi, Float(beta),
                    UnsafeMutableRawPointer(y + t0 * ldy).assumingMemoryBound(to: Float.self), ldy,
                    bias.map { UnsafeRawPointer($0).assumingMemoryBound(to: Float.self) })
            } else {
                let slots = s.pattern.keptCount(forLength: s.columns)
                for t in r {
                    for row in 0..<s.rows {
                        var total: T = 0
                        for slot in 0..<slots {
                            let k = slot / n * m + Int(pi[row * slots + slot])
                            total += values[row * slots + slot] * x[t * ldx + k]
                        }
                        let previous = beta == 0 ? 0 : beta * y[t * ldy + row]
                        y[t * ldy + row] = total + previous + (bias?[row] ?? 0)
                    }
                }
            }
        }
    }

    func withOptionalRead<T: CPUFloat, R>(
        _ tensor: Tensor?, as type: T.Type, _ operation: String, _ body: (UnsafePointer<T>?) throws -> R
    ) throws -> R {
        guard let tensor else { return try body(nil) }
        return try read(tensor, as: type, operation) { try body($0) }
    }

    public func doublePrunedTranspose(of w: CompressedMatrix) throws -> CompressedMatrix {
        try w.pattern.checkDivisible(w.rows, dimension: "dout (rows of W)", operation: "doublePrunedTranspose")
        let pruned = try decompress(w)  // W⊙Mr
        let rowMask = try mask(of: w)
        let columnMask = try pruneMask(pruned, pattern: w.pattern, direction: .columnWise, within: rowMask)
        return try compress(transpose(pruned), pattern: w.pattern, mask: transpose(columnMask))
    }

    public func refreshDoublePrunedTranspose(_ transposed: CompressedMatrix, from w: CompressedMatrix) throws {
        guard transposed.rows == w.columns, transposed.columns == w.rows, transposed.pattern == w.pattern else {
            throw TensorError.shapeMismatch(
                operation: "refreshDoublePrunedTranspose", shapes: [transposed.shape, w.shape],
                reason: "the transpose must be [din, dout] with W's pattern")
        }
        try OperandChecks.sameDType([transposed.values, w.values], "refreshDoublePrunedTranspose")
        let map = try transposeSlotMap(transposed, w).slots
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(w.values, as: type, "refreshDoublePrunedTranspose") { wv in
                try modify(transposed.values, as: type, "refreshDoublePrunedTranspose") { tv in
                    map.withUnsafeBufferPointer { map in
                        parallelFor(map.count, grain: 1 << 14) { r in
                            for t in r { tv[t] = map[t] >= 0 ? wv[Int(map[t])] : 0 }
                        }
                    }
                }
            }
        }
        try (computeKind(for: w.values.dtype, operation: "refreshDoublePrunedTranspose") == .double ? run(Double.self) : run(Float.self))
    }

    /// For each slot of the transpose, the slot of W holding the same weight, or −1 where W⊙Mr is zero.
    /// Built once per (transpose, W) pair and kept with the transpose's values: the masks do not change
    /// until Mc is re-selected, which makes a new transpose.
    final class TransposeSlotMap {
        let source: ObjectIdentifier
        let slots: [Int32]
        init(source: ObjectIdentifier, slots: [Int32]) {
            self.source = source
            self.slots = slots
        }
    }

    private func transposeSlotMap(_ transposed: CompressedMatrix, _ w: CompressedMatrix) throws -> TransposeSlotMap {
        let holder = try host(transposed.values, "refreshDoublePrunedTranspose")
        let source = ObjectIdentifier(w.indices.storage)
        if let cached = holder.derived as? TransposeSlotMap, cached.source == source { return cached }
        let wi = try hostPointer(w.indices, "refreshDoublePrunedTranspose").assumingMemoryBound(to: UInt8.self)
        let ti = try hostPointer(transposed.indices, "refreshDoublePrunedTranspose").assumingMemoryBound(to: UInt8.self)
        let (n, m) = (w.pattern.n, w.pattern.m)
        let wSlots = w.pattern.keptCount(forLength: w.columns)
        let tSlots = w.pattern.keptCount(forLength: transposed.columns)
        var slots = [Int32](repeating: -1, count: transposed.rows * tSlots)
        slots.withUnsafeMutableBufferPointer { map in
            parallelFor(transposed.rows, grain: 64) { rows in
                for j in rows {  // row j of Wᵀ = column j of W
                    for slot in 0..<tSlots {
                        let o = slot / n * m + Int(ti[j * tSlots + slot])
                        // W[o, j] sits among row o's slots of group j / m; absent means pruned by Mr.
                        let first = o * wSlots + j / m * n
                        for s in first..<(first + n) where Int(wi[s]) == j % m { map[j * tSlots + slot] = Int32(s) }
                    }
                }
            }
        }
        let built = TransposeSlotMap(source: source, slots: slots)
        holder.derived = built
        return built
    }

    // Z [T, dout + r] = X·mergedᵀ; Y = Z[:, :dout] + scale·Z[:, dout:]·R + bias, written as [T, dout].
    public func mergedSparseLowRankMatmul(
        _ x: Tensor, merged: CompressedMatrix, outFeatures: Int, up: Tensor, scale: Float, bias: Tensor?
    ) throws -> Tensor {
        let rank = try OperandChecks.mergedSparseLowRank(x, merged: merged, outFeatures: outFeatures, up: up, bias: bias)
        if rank == 0 { return try sparseMatmul(x, merged, bias: bias) }
        let stacked = try sparseMatmul(x, merged, bias: nil)
        let tokens = stacked.count / max(merged.rows, 1)
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try modify(stacked, as: type, "mergedSparseLowRankMatmul") { z in
                try read(up, as: type, "mergedSparseLowRankMatmul") { pr in
                    try withOptionalRead(bias, as: type, "mergedSparseLowRankMatmul") { pbias in
                        // The low-rank product accumulates straight into the sparse result (beta = 1), bias in the epilogue.
                        parallelFor(tokens, grain: 64) { r in
                            rawGEMM(
                                false, false, r.count, outFeatures, rank, T(scale), z + r.lowerBound * merged.rows + outFeatures,
                                merged.rows, pr, outFeatures, 1, z + r.lowerBound * merged.rows, merged.rows, pbias)
                        }
                    }
                }
            }
            return try read(stacked, as: type, "mergedSparseLowRankMatmul") { z in
                try produce(Array(x.shape.dropLast()) + [outFeatures], dtype: x.dtype, as: type) { out in
                    for t in 0..<tokens { (out + t * outFeatures).update(from: z + t * merged.rows, count: outFeatures) }
                }
            }
        }
        return try (computeKind(for: x.dtype, operation: "mergedSparseLowRankMatmul") == .double ? run(Double.self) : run(Float.self))
    }
}
