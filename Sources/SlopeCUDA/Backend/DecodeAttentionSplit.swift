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

/// Which kernel runs a decode step's attention: `SLOPE_DECODE_ATTENTION` = wide (`decode_attention_wide`, the default:
/// 16-byte loads, keys and values together; 1.13x / 1.40x dense decode at batch 1 / 8 on an H200) or plain
/// (`decode_attention`). The wide one applies where a key row is a power-of-two number of 16-byte chunks up to 32
/// (d = 64, 128, 256 in bf16); the plain one runs otherwise.
public enum DecodeAttentionKernel: String, Sendable {
    case plain, wide

    /// The kernel's name for this head dimension and element size.
    func name(headDimension d: Int, elementBytes: Int) -> String {
        let perChunk = 16 / elementBytes, chunks = d / perChunk
        let fits = d % perChunk == 0 && chunks >= 1 && chunks <= 32 && chunks & (chunks - 1) == 0 && d <= 256
        return self == .wide && fits ? "decode_attention_wide" : "decode_attention"
    }
}
