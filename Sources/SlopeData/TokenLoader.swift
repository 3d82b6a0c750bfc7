/// Batches of next-token training examples from a token stream.
///
/// With ``Sampling/windows`` the stream is cut into windows of `sequenceLength + 1` tokens and each epoch visits
/// every window once in an order shuffled by `seed` and the epoch number. With ``Sampling/random`` each sequence
/// starts at a random offset (nanoGPT's way: the same text is seen in other alignments on every pass), the
/// offset of the k-th sequence a function of `seed` and k alone. Either way the position is a small Codable
/// value, so a resumed run continues with exactly the batches the interrupted one would have seen.
public struct TokenLoader: Sendable {
    /// How sequences are cut from the stream.
    public enum Sampling: String, Codable, Sendable, CaseIterable {
        /// Fixed windows, each once per epoch in a shuffled order.
        case windows
        /// Uniformly random start offsets, independently for every sequence.
        case random
    }

    /// Where the loader is: saved in checkpoints.
    public struct Position: Codable, Equatable, Sendable {
        public var epoch: Int
        public var window: Int

        public init(epoch: Int, window: Int) {
            self.epoch = epoch
            self.window = window
        }
    }

    public let tokens: [Int32]
    public let batchSize: Int
    public let sequenceLength: Int
    public let seed: UInt64
    public let sampling: Sampling
    /// Where the loader is; with random sampling `window` counts the sequences drawn.
    public private(set) var position = Position(epoch: 0, window: 0)
    private var order: [Int]

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case tooFewTokens(have: Int, need: Int)
        case invalidShape(batchSize: Int, sequenceLength: Int)

        public var description: String {
            switch self {
            case let .tooFewTokens(have, need):
                return "the data has \(have) tokens but one batch needs \(need); use more text or a smaller batch or sequence length"
            case let .invalidShape(batch, sequence):
                return "batch size (\(batch)) and sequence length (\(sequence)) must be positive"
            }
        }
    }

    public init(tokens: [Int32], batchSize: Int, sequenceLength: Int, seed: UInt64, sampling: Sampling = .windows) throws {
        guard batchSize > 0, sequenceLength > 0 else { throw Failure.invalidShape(batchSize: batchSize, sequenceLength: sequenceLength) }
        let windows = tokens.count / (sequenceLength + 1)
        guard windows >= batchSize else { throw Failure.tooFewTokens(have: tokens.count, need: batchSize * (sequenceLength + 1)) }
        self.tokens = tokens
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.seed = seed
        self.sampling = sampling
        order = sampling == .windows ? Self.shuffledWindows(windows, seed: seed, epoch: 0) : []
    }

    /// Sequences per pass over the data (whole windows).
    public var windowsPerEpoch: Int { tokens.count / (sequenceLength + 1) }

    /// Continues from a saved position.
    public mutating func restore(_ saved: Position) {
        position = saved
        if sampling == .windows { order = Self.shuffledWindows(windowsPerEpoch, seed: seed, epoch: saved.epoch) }
    }

    /// The next batch: `inputs` and `targets` are `[batchSize · sequenceLength]`, targets shifted by one.
    public mutating func next() -> (inputs: [Int32], targets: [Int32]) {
        next(part: 0, of: 1)
    }

    /// Data parallelism: the global batch of `parts × batchSize` sequences is drawn (the position moves past all of
    /// them) and part `part` of it returned, so the ranks of a job together see exactly the batches one process
    /// with the global batch would, and a position saved at one world size continues the same sequence at another.
    public mutating func next(part: Int, of parts: Int) -> (inputs: [Int32], targets: [Int32]) {
        precondition(parts >= 1 && (0..<parts).contains(part), "part \(part) of \(parts)")
        var inputs: [Int32] = [], targets: [Int32] = []
        inputs.reserveCapacity(batchSize * sequenceLength)
        targets.reserveCapacity(batchSize * sequenceLength)
        let mine = (part * batchSize)..<((part + 1) * batchSize)
        for slot in 0..<(parts * batchSize) {
            let start: Int
            if sampling == .random {
                start = Self.randomOffset(sequence: position.window, seed: seed, count: tokens.count - sequenceLength)
            } else {
                if position.window == order.count {
                    position = Position(epoch: position.epoch + 1, window: 0)
                    order = Self.shuffledWindows(order.count, seed: seed, epoch: position.epoch)
                }
                start = order[position.window] * (sequenceLength + 1)
            }
            position.window += 1
            guard mine.contains(slot) else { continue }
            inputs += tokens[start..<(start + sequenceLength)]
            targets += tokens[(start + 1)...(start + sequenceLength)]
        }
        return (inputs, targets)
    }

    /// The start of sequence number `sequence` under random sampling: uniform in `0..<count`, from the seed and
    /// the sequence number alone (resumable without any generator state).
    static func randomOffset(sequence: Int, seed: UInt64, count: Int) -> Int {
        var generator = CorpusGenerator(seed: seed ^ (UInt64(sequence) &+ 1) &* 0xD1B5_4A32_D192_ED03)
        return generator.next(count)
    }

    static func shuffledWindows(_ count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var generator = CorpusGenerator(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, generator.next(i + 1)) }
        return order
    }

    /// Splits a stream into training and validation parts, the last `validationFraction` held out.
    public static func split(_ tokens: [Int32], validationFraction: Double) -> (train: [Int32], validation: [Int32]) {
        let held = Int((Double(tokens.count) * min(max(validationFraction, 0), 1)).rounded())
        return (Array(tokens.dropLast(held)), Array(tokens.suffix(held)))
    }
}
