/// How a decode step's attention splits each sequence's keys across blocks ("flash decoding"): one block per
/// (sequence, query head) leaves most SMs idle at small batches — 32 heads of one sequence fill 32 of an H100's 132 —
/// so each sequence's keys are cut into `splits` chunks of `chunk` keys, each its own block, and a second kernel
/// merges the chunks' softmaxes. Sized from the longest length possible (a recorded step keeps its launch while the
/// lengths grow), never below `minimumChunk` keys a block (below that, merging costs more than the split saves).
struct DecodeAttentionSplit: Equatable {
    let splits: Int
    /// Keys per block; with one split, every key of the sequence.
    let chunk: Int

    static let minimumChunk = 64
    /// Blocks per SM the split aims for.
    static let blocksPerMultiprocessor = 2

    init(splits: Int, chunk: Int) {
        self.splits = splits
        self.chunk = chunk
    }

    init(sequences: Int, queryHeads: Int, maxLength: Int, multiprocessors: Int) {
        let blocks = max(sequences * queryHeads, 1)
        let wanted = (Self.blocksPerMultiprocessor * multiprocessors + blocks - 1) / blocks
        let splits = max(1, min(wanted, maxLength / Self.minimumChunk))
        self.init(splits: splits, chunk: splits == 1 ? Int(Int32.max) : (maxLength + splits - 1) / splits)
    }
}
