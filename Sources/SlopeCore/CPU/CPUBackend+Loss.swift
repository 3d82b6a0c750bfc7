import RealModule

extension CPUBackend {
    /// Validated token ids as a buffer; every id must index a row of a table with `rows` rows.
    private func checkedIDs(_ ids: Tensor, rows: Int, ignoreIndex: Int32?, _ operation: String) throws -> UnsafePointer<Int32> {
        try OperandChecks.dtype(ids, .int32, operation)
        let p = UnsafePointer(try hostPointer(ids, operation).assumingMemoryBound(to: Int32.self))
        for i in 0..<ids.count where p[i] != ignoreIndex && (p[i] < 0 || Int(p[i]) >= rows) {
            throw TensorError.invalidArgument(
                operation: operation, reason: "id \(p[i]) at position \(i) is outside 0..<\(rows)")
        }
        return p
    }

    // out [ids..., C] = table [V, C] rows at ids.
    public func embedding(_ table: Tensor, ids: Tensor) throws -> Tensor {
        guard table.rank == 2 else {
            throw TensorError.shapeMismatch(operation: "embedding", shapes: [table.shape], reason: "table must be [V, C]")
        }
        let (vocabulary, columns) = (table.shape[0], table.shape[1])
        let pid = try checkedIDs(ids, rows: vocabulary, ignoreIndex: nil, "embedding")
        let result = try newTensor(ids.shape + [columns], dtype: table.dtype)
        let source = try hostPointer(table, "embedding")
        let target = try hostPointer(result, "embedding")
        let rowBytes = columns * table.dtype.byteSize
        for i in 0..<ids.count {
            (target + i * rowBytes).copyMemory(from: source + Int(pid[i]) * rowBytes, byteCount: rowBytes)
        }
        return result
    }

    // tableGradient [V, C] += scatter of dy [n, C] at ids [n].
    public func embeddingBackward(_ dy: Tensor, ids: Tensor, into tableGradient: Tensor) throws {
        guard tableGradient.rank == 2 else {
            throw TensorError.shapeMismatch(operation: "embeddingBackward", shapes: [tableGradient.shape], reason: "gradient must be [V, C]")
        }
        let (vocabulary, columns) = (tableGradient.shape[0], tableGradient.shape[1])
        guard dy.shape == ids.shape + [columns] else {
            throw TensorError.shapeMismatch(
                operation: "embeddingBackward", shapes: [dy.shape, ids.shape], reason: "dy must be ids' shape + [\(columns)]")
        }
        try OperandChecks.sameDType([dy, tableGradient], "embeddingBackward")
        let pid = try checkedIDs(ids, rows: vocabulary, ignoreIndex: nil, "embeddingBackward")
        func run<T: CPUFloat>(_ type: T.Type) throws {
            try read(dy, as: type, "embeddingBackward") { pdy in
                try modify(tableGradient, as: type, "embeddingBackward") { pg in
                    // Split by columns: rows of the same id never race.
                    parallelFor(columns, grain: 64) { r in
                        for i in 0..<ids.count {
                            let g = pg + Int(pid[i]) * columns
                            let d = pdy + i * columns
                            for j in r { g[j] += d[j] }
                        }
                    }
                }
            }
        }
        try (computeKind(for: dy.dtype, operation: "embeddingBackward") == .double ? run(Double.self) : run(Float.self))
    }

    public func argmaxRows(_ x: Tensor) throws -> Tensor {
        let (rows, columns) = try OperandChecks.argmaxRows(x)
        let values = try doubles(x)
        let indices = (0..<rows).map { row -> Int32 in
            var (best, index) = (-Double.infinity, -1)
            for column in 0..<columns {  // the first on ties; NaN never wins (a row of NaNs gives 0)
                let value = values[row * columns + column]
                if value > best || (index < 0 && value == best) { (best, index) = (value, column) }
            }
            return Int32(max(index, 0))
        }
        return try tensor(indices, shape: [rows])
    }

    public func sampleRows(_ x: Tensor, temperatures: [Float], uniforms: [Float]) throws -> Tensor {
        let (rows, columns) = try OperandChecks.sampleRows(x, temperatures: temperatures, uniforms: uniforms)
        let greedy = try int32s(argmaxRows(x)), values = try doubles(x)
        let draws = (0..<rows).map { row -> Int32 in
            let t = Double(temperatures[row])
            let logits = values[(row * columns)..<((row + 1) * columns)]
            guard t > 0, let top = logits.filter({ !$0.isNaN }).max(), top > -.infinity else { return greedy[row] }
            let weights = logits.map { $0.isNaN ? 0 : Double.exp($0 / t - top / t) }
            var threshold = Double(uniforms[row]) * weights.reduce(0, +)
            var pick = -1
            for (column, weight) in weights.enumerated() {
                if weight > 0 { pick = column }  // the last column with weight, should rounding leave the threshold unmet
                threshold -= weight
                if threshold < 0 { break }
            }
            return Int32(max(pick, 0))
        }
        return try tensor(draws, shape: [rows])
    }

    public func truncatedLogits(_ x: Tensor, temperatures: [Float], topK: [Int], topP: [Float]) throws -> Tensor {
        let (rows, columns) = try OperandChecks.truncatedLogits(x, temperatures: temperatures, topK: topK, topP: topP)
        var values = try doubles(x)
        for row in 0..<rows where temperatures[row] > 0 {
            let base = row * columns, t = Double(temperatures[row])
            let order = (0..<columns).filter { !values[base + $0].isNaN }.sorted { values[base + $0] > values[base + $1] }  // (stable: ties by column)
            var keep = topK[row] == 0 ? order.count : min(topK[row], order.count)
            if topP[row] < 1, let top = order.first.map({ values[base + $0] }), top > -.infinity {
                let weights = order.map { Double.exp(values[base + $0] / t - top / t) }
                let goal = Double(topP[row]) * weights.reduce(0, +)
                var cumulative = 0.0
                for rank in 0..<keep {
                    cumulative += weights[rank]
                    if cumulative >= goal { keep = rank + 1; break }
                }
            }
            for column in 0..<columns where values[base + column].isNaN { values[base + column] = -.infinity }
            for column in order.dropFirst(keep) { values[base + column] = -.infinity }
        }
        return try tensor(values, shape: x.shape, dtype: x.dtype)
    }

    // loss = mean over counted rows of −log softmax(logits [n, V])[target]; probabilities [n, V].
    public func crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex: Int32) throws -> CrossEntropyOutput {
        let (rows, classes) = try logits.asMatrix(operation: "crossEntropy")
        guard targets.count == rows else {
            throw TensorError.shapeMismatch(
                operation: "crossEntropy", shapes: [logits.shape, targets.shape], reason: "one target per row of logits")
        }
        let pt = try checkedIDs(targets, rows: classes, ignoreIndex: ignoreIndex, "crossEntropy")
        let probabilities = try newTensor(logits.shape, dtype: logits.dtype)
        func run<T: CPUFloat>(_ type: T.Type) throws -> (Double, Int) {
            var losses = [Double](repeating: 0, count: rows)
            try read(logits, as: type, "crossEntropy") { px in
                try modify(probabilities, as: type, "crossEntropy") { pp in
                    losses.withUnsafeMutableBufferPointer { loss in
                        parallelFor(rows, grain: max(1, 4096 / max(classes, 1))) { r in
                            for row in r {
                                let line = px + row * classes
                                softmaxRow(line, pp + row * classes, classes)
                                guard pt[row] != ignoreIndex else { continue }
                                // −log p[target] = logsumexp − x[target], computed in Double for accuracy.
                                var maximum = -Double.infinity
                                for j in 0..<classes { maximum = max(maximum, Double(line[j])) }
                                var total = 0.0
                                for j in 0..<classes { total += Double.exp(Double(line[j]) - maximum) }
                                loss[row] = maximum + Double.log(total) - Double(line[Int(pt[row])])
                            }
                        }
                    }
                }
            }
            let counted = (0..<rows).filter { pt[$0] != ignoreIndex }.count
            return (losses.reduce(0, +) / Double(max(counted, 1)), counted)
        }
        let (loss, counted) = try (computeKind(for: logits.dtype, operation: "crossEntropy") == .double ? run(Double.self) : run(Float.self))
        let lossTensor = try tensor([loss], shape: [1], dtype: logits.dtype == .float64 ? .float64 : .float32)
        return CrossEntropyOutput(loss: lossTensor, probabilities: probabilities, countedRows: counted)
    }

    public func crossEntropyBackward(
        _ saved: CrossEntropyOutput, targets: Tensor, ignoreIndex: Int32, scale: Float
    ) throws -> Tensor {
        let (rows, classes) = try saved.probabilities.asMatrix(operation: "crossEntropyBackward")
        guard targets.count == rows else {
            throw TensorError.shapeMismatch(
                operation: "crossEntropyBackward", shapes: [saved.probabilities.shape, targets.shape],
                reason: "one target per row")
        }
        let pt = try checkedIDs(targets, rows: classes, ignoreIndex: ignoreIndex, "crossEntropyBackward")
        let probabilities = saved.probabilities
        func run<T: CPUFloat>(_ type: T.Type) throws -> Tensor {
            try read(probabilities, as: type, "crossEntropyBackward") { pp in
                try produce(probabilities.shape, dtype: probabilities.dtype, as: type) { out in
                    let factor = T(scale) / T(max(saved.countedRows, 1))
                    parallelFor(rows, grain: max(1, 4096 / max(classes, 1))) { r in
                        for row in r where pt[row] != ignoreIndex {
                            let base = row * classes
                            for j in 0..<classes { out[base + j] = pp[base + j] * factor }
                            out[base + Int(pt[row])] -= factor
                        }
                    }
                }
            }
        }
        return try (computeKind(for: probabilities.dtype, operation: "crossEntropyBackward") == .double ? run(Double.self) : run(Float.self))
    }
}
