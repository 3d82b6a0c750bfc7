@testable import SlopeCUDA
import XCTest

/// The host side of multi-tensor launches: how tensors are batched into launches and blocks, and the by-value
/// table's bytes, which must match the kernels' structs (AdamWEntry 64 bytes, SquaresEntry 24, MULTI_TENSORS 48).
final class MultiTensorLaunchTests: XCTestCase {
    func testTensorsAreBatchedInOrderWithTheirBlocks() {
        let counts = [1003, 0, 300, 16] + Array(repeating: 5, count: 50)
        let batches = MultiTensorLaunch.batches(counts, chunk: 128) { $0 }
        XCTAssertEqual(batches.map(\.items.count), [48, 5], "the empty tensor is left out; 48 per launch")
        XCTAssertEqual(batches[0].items.prefix(4).map(\.firstBlock), [0, 8, 11, 12])
        XCTAssertEqual(batches[0].items.prefix(3).map(\.count), [1003, 300, 16])
        XCTAssertEqual(batches[0].blocks, 8 + 3 + 1 + 45, "ceil(n / chunk) blocks each")
        XCTAssertEqual(batches[1].items.map(\.firstBlock), [0, 1, 2, 3, 4], "a new launch starts at block 0")
        XCTAssertTrue(MultiTensorLaunch.batches([0, 0], chunk: 8) { $0 }.isEmpty)
        XCTAssertEqual(MultiTensorLaunch.batches([3, 4, 5], chunk: 8, perLaunch: 1) { $0 }.map(\.items.count), [1, 1, 1], "one per launch")
    }

    func testTableBytesFollowTheKernelStructs() throws {
        let batch = try XCTUnwrap(MultiTensorLaunch.batches([300, 16], chunk: 128) { $0 }.first)
        let table = batch.table(entryBytes: 24) { writer, entry in
            writer.uint64(0x1122_3344_5566_7788)
            writer.int64(entry.count)
            writer.int64(entry.firstBlock)
        }
        XCTAssertEqual(table.count, 48 * 24 + 8, "entries padded to MULTI_TENSORS, then the count and 4 bytes of padding")
        func int64(at offset: Int) -> Int64 { table[offset..<offset + 8].reversed().reduce(0) { $0 << 8 | Int64($1) } }
        XCTAssertEqual(UInt64(bitPattern: int64(at: 0)), 0x1122_3344_5566_7788, "little-endian address")
        XCTAssertEqual([int64(at: 8), int64(at: 16), int64(at: 32), int64(at: 40)], [300, 0, 16, 3])
        XCTAssertEqual(table[48..<48 * 24].allSatisfy { $0 == 0 }, true, "unused entries are zero")
        XCTAssertEqual(Array(table[48 * 24..<48 * 24 + 4]), [2, 0, 0, 0], "the entry count")

        var writer = TableWriter()
        writer.float(1.5)
        writer.int32(-2)
        XCTAssertEqual(writer.bytes, [0, 0, 0xC0, 0x3F, 0xFE, 0xFF, 0xFF, 0xFF])
    }

    func testFusionsParseFromTheEnvironment() throws {
        XCTAssertEqual(try Fusion.parse("on"), Set(Fusion.allCases))
        XCTAssertEqual(try Fusion.parse("off"), [])
        XCTAssertEqual(try Fusion.parse("residual-norm"), [.residualNorm])
        XCTAssertEqual(try Fusion.parse("bias-gradient,residual-norm"), [.biasGradient, .residualNorm])
        XCTAssertEqual(Fusion.tensorsPerLaunch([.multiTensor]), 48)
        XCTAssertEqual(Fusion.tensorsPerLaunch([]), 1)
        XCTAssertThrowsError(try Fusion.parse("everything")) { error in
            XCTAssertTrue("\(error)".contains("residual-norm, bias-gradient, multi-tensor"), "\(error)")
        }
    }
}
