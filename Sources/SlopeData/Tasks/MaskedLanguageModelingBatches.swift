import SlopeCore

/// Batches of masked sentence pairs for BERT pretraining, in a seeded order that a checkpoint can resume. Each epoch
/// visits every instance once in a new shuffled order (a last partial batch is left for the next epoch's order).
/// Masks are drawn per instance from the seed: the same every epoch (static, as examples made once) or new each
/// epoch (dynamic, as RoBERTa) — so neither needs the masked data stored, and a resumed run sees what it would have.
public struct MaskedLanguageModelingBatches: Sendable {
    public enum Masking: String, Codable, CaseIterable, Sendable {
        case `static`, dynamic
    }

    /// Where the next batch starts: the epoch and the batch within it.
    public struct Position: Codable, Equatable, Sendable {
        public var epoch: Int
        public var batch: Int
        public init(epoch: Int, batch: Int) { (self.epoch, self.batch) = (epoch, batch) }
    }

    /// One batch, padded to its longest sequence.
    public struct Batch: Sendable, Equatable {
        public var inputIDs: [Int32]
        public var tokenTypes: [Int32]
        /// The original token at each predicted position, ``MaskedLanguageModeling/ignoredLabel`` elsewhere.
        public var labels: [Int32]
        /// Per sequence: 1 where B came from another document.
        public var nextSentenceLabels: [Int32]
        /// Each sequence's real tokens.
        public var lengths: [Int]
        public var sequenceLength: Int
        public var count: Int { lengths.count }
        /// Positions predicted in the batch.
        public var predictions: Int { labels.filter { $0 != MaskedLanguageModeling.ignoredLabel }.count }
    }

    public let instances: [MaskedLanguageModeling.Instance]
    public let masking: MaskedLanguageModeling
    public let mode: Masking
    public let batchSize: Int
    public let seed: UInt64
    public private(set) var position = Position(epoch: 0, batch: 0)
    private var order: [Int] = []

    public init(
        instances: [MaskedLanguageModeling.Instance], masking: MaskedLanguageModeling, mode: Masking, batchSize: Int, seed: UInt64
    ) throws {
        guard batchSize >= 1, instances.count >= batchSize else {
            throw MaskedLanguageModelingError.invalid(
                "\(instances.count) sentence pairs cannot fill a batch of \(batchSize); give more text or a smaller batch")
        }
        guard let longest = instances.map(\.ids.count).max(), longest <= masking.sequenceLength else {
            throw MaskedLanguageModelingError.invalid("a sentence pair is longer than the sequence length \(masking.sequenceLength)")
        }
        (self.instances, self.masking, self.mode, self.batchSize, self.seed) = (instances, masking, mode, batchSize, seed)
        order = Self.order(count: instances.count, epoch: 0, seed: seed)
    }

    /// Full batches per epoch.
    public var batchesPerEpoch: Int { instances.count / batchSize }

    /// The next batch; moves on to a new epoch (and order) when this one has no full batch left.
    public mutating func next() -> Batch {
        if position.batch >= batchesPerEpoch {
            position = Position(epoch: position.epoch + 1, batch: 0)
            order = Self.order(count: instances.count, epoch: position.epoch, seed: seed)
        }
        let start = position.batch * batchSize
        position.batch += 1
        return batch(order[start..<(start + batchSize)], epoch: position.epoch)
    }

    /// Continues from `position` (a checkpoint's).
    public mutating func restore(_ position: Position) {
        self.position = position
        order = Self.order(count: instances.count, epoch: position.epoch, seed: seed)
    }

    /// The instances `indices` masked as epoch `epoch` masks them, as one batch.
    public func batch<C: Collection>(_ indices: C, epoch: Int) -> Batch where C.Element == Int {
        let examples = indices.map { index -> MaskedLanguageModeling.Example in
            var generator = SeededGenerator(seed: Self.maskSeed(seed, index: index, epoch: mode == .static ? 0 : epoch))
            return masking.masked(instances[index], using: &generator)
        }
        let sequence = examples.map(\.length).max() ?? 0
        func cut(_ values: [Int32]) -> [Int32] { Array(values.prefix(sequence)) }
        return Batch(
            inputIDs: examples.flatMap { cut($0.inputIDs) }, tokenTypes: examples.flatMap { cut($0.tokenTypes) },
            labels: examples.flatMap { cut($0.labels) }, nextSentenceLabels: examples.map { $0.isRandomNext ? 1 : 0 },
            lengths: examples.map(\.length), sequenceLength: sequence)
    }

    static func order(count: Int, epoch: Int, seed: UInt64) -> [Int] {
        var generator = SeededGenerator(seed: seed ^ (0x0BE7_0000 &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15))
        var order = Array(0..<count)
        order.shuffle(using: &generator)
        return order
    }

    static func maskSeed(_ seed: UInt64, index: Int, epoch: Int) -> UInt64 {
        seed &+ 0xA5C0_FFEE &+ UInt64(index) &* 0xBF58_476D_1CE4_E5B9 &+ UInt64(epoch) &* 0x94D0_49BB_1331_11EB
    }
}
