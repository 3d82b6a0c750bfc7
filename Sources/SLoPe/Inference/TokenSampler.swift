import RealModule

/// Picks the next token from logits: greedy at temperature 0, otherwise a draw from the softmax at
/// `temperature`, restricted to the `topK` most likely tokens and to the smallest set whose probability
/// reaches `topP` (nucleus sampling).
public struct TokenSampler: Sendable {
    public var temperature: Double
    public var topK: Int?
    public var topP: Double?
    public var generator: SeededGenerator

    public init(temperature: Double = 0.8, topK: Int? = nil, topP: Double? = nil, seed: UInt64 = 0) throws {
        guard temperature.isFinite, temperature >= 0, topK.map({ $0 >= 1 }) ?? true, topP.map({ $0 > 0 && $0 <= 1 }) ?? true else {
            throw TensorError.invalidArgument(
                operation: "sampling", reason: "need a finite temperature ≥ 0, top-k ≥ 1 and 0 < top-p ≤ 1 (got temperature \(temperature), "
                    + "top-k \(topK.map(String.init) ?? "none"), top-p \(topP.map { "\($0)" } ?? "none"))")
        }
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        generator = SeededGenerator(seed: seed)
    }

    /// The probabilities sampling draws from (after temperature, top-k and top-p), summing to 1.
    public func distribution(_ logits: [Float]) -> [Double] {
        guard temperature > 0 else {
            var result = [Double](repeating: 0, count: logits.count)
            result[Self.argmax(logits)] = 1
            return result
        }
        let scaled = logits.map { Double($0) / temperature }
        let maximum = scaled.max() ?? 0
        var probabilities = scaled.map { Double.exp($0 - maximum) }
        let order = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }
        var keep = order.count
        if let topK { keep = min(keep, topK) }
        if let topP {
            let total = probabilities.reduce(0, +)
            var cumulative = 0.0
            for (rank, index) in order.prefix(keep).enumerated() {
                cumulative += probabilities[index] / total
                if cumulative >= topP {
                    keep = rank + 1
                    break
                }
            }
        }
        for index in order.dropFirst(keep) { probabilities[index] = 0 }
        let total = probabilities.reduce(0, +)
        return probabilities.map { $0 / total }
    }

    public mutating func sample(_ logits: [Float]) -> Int32 {
        guard temperature > 0 else { return Int32(Self.argmax(logits)) }
        let probabilities = distribution(logits)
        var threshold = generator.nextUniform()
        for (index, p) in probabilities.enumerated() where p > 0 {
            threshold -= p
            if threshold < 0 { return Int32(index) }
        }
        return Int32(probabilities.lastIndex { $0 > 0 } ?? 0)
    }

    static func argmax(_ values: [Float]) -> Int {
        values.indices.max { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) } ?? 0
    }
}
