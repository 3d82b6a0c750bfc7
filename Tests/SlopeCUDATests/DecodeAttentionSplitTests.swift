@testable import SlopeCUDA
import XCTest

/// How a decode step's attention cuts each sequence's keys across blocks.
final class DecodeAttentionSplitTests: XCTestCase {
    func testSplitsFillTheSMsWithoutChunksBelowTheMinimum() {
        // One sequence of 32 heads on 132 SMs: ⌈264 / 32⌉ = 9 splits of ⌈640 / 9⌉ = 72 keys.
        XCTAssertEqual(DecodeAttentionSplit(sequences: 1, queryHeads: 32, maxLength: 640, multiprocessors: 132), .init(splits: 9, chunk: 72))
        // Short caches split only as far as 64 keys a block allow; under 128 keys, not at all.
        XCTAssertEqual(DecodeAttentionSplit(sequences: 1, queryHeads: 32, maxLength: 200, multiprocessors: 132), .init(splits: 3, chunk: 67))
        XCTAssertEqual(DecodeAttentionSplit(sequences: 1, queryHeads: 32, maxLength: 127, multiprocessors: 132).splits, 1)
        // Enough sequences fill the GPU alone: one split holding every key.
        let whole = DecodeAttentionSplit(sequences: 32, queryHeads: 32, maxLength: 4096, multiprocessors: 132)
        XCTAssertEqual(whole, .init(splits: 1, chunk: Int(Int32.max)))
        // The chunks always cover the longest length.
        for (sequences, heads, length) in [(1, 8, 4096), (3, 12, 1000), (8, 32, 2047), (2, 1, 64)] {
            let split = DecodeAttentionSplit(sequences: sequences, queryHeads: heads, maxLength: length, multiprocessors: 132)
            XCTAssertGreaterThanOrEqual(split.splits * split.chunk, length)
            XCTAssertTrue(split.splits == 1 || split.chunk >= DecodeAttentionSplit.minimumChunk)
        }
    }
}
