import FoundationEssentials
@testable import SlopeCUDA
import XCTest

final class SparseGEMMDecisionTests: XCTestCase {
    func testDecisionsSurviveARestartAndAreKeyedByShape() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-decisions-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = SparseGEMMDecisionStore.path(cacheDirectory: folder, device: "NVIDIA H100 80GB HBM3 sm_90", cusparseLtVersion: 800, cublasLtVersion: 130100)
        XCTAssertEqual(path, folder + "/sparse-gemm/NVIDIA_H100_80GB_HBM3_sm_90-cusparselt800-cublaslt130100.json")
        XCTAssertNil(SparseGEMMDecisionStore.path(cacheDirectory: nil, device: "x", cusparseLtVersion: 0, cublasLtVersion: 0))
        // Each skinny kernel keeps its own decisions (a route timed with one is not the other's).
        XCTAssertEqual(
            SparseGEMMDecisionStore.path(cacheDirectory: folder, device: "H100 sm_90", cusparseLtVersion: 800, cublasLtVersion: 130100, skinnyKernel: "staged"),
            folder + "/sparse-gemm/H100_sm_90-cusparselt800-cublaslt130100-skinny-staged.json")

        let key = SparseGEMMDecisionStore.key(tokens: 8192, outFeatures: 4096, inFeatures: 16384, dtype: "bfloat16")
        XCTAssertEqual(key, "bfloat16 8192x4096x16384")
        XCTAssertEqual(
            SparseGEMMDecisionStore.key(tokens: 8192, outFeatures: 4096, inFeatures: 16384, dtype: "bfloat16", bias: "bias"),
            "bfloat16 8192x4096x16384 +bias", "with a bias the routes are timed with it, so it is a decision of its own")
        let decision = SparseGEMMDecision(
            route: .sparseB, algorithm: .init(configuration: 3, splitK: 4, splitKMode: 1, splitKBuffers: 2), milliseconds: ["dense": 1.5, "sparseA": 1.2, "sparseB": 1.05])
        let store = SparseGEMMDecisionStore(path: path)
        XCTAssertNil(store.decision(for: key))
        store.record(decision, for: key)
        let reopened = SparseGEMMDecisionStore(path: path)
        XCTAssertEqual(reopened.decision(for: key), decision)
        XCTAssertNil(reopened.decision(for: SparseGEMMDecisionStore.key(tokens: 16384, outFeatures: 4096, inFeatures: 16384, dtype: "bfloat16")))
    }

    /// Up to 64 rows each count is its own decision; above, counts share one per bucket (a power of two or 1.5 times
    /// one), so a server's steps of every size do not each time the routes again.
    func testTokenCountsAbove64ShareADecisionPerBucket() throws {
        for tokens in [1, 7, 32, 63, 64] { XCTAssertEqual(SparseGEMMDecisionStore.tokenBucket(tokens), tokens) }
        let expected = [65: 96, 96: 96, 97: 128, 128: 128, 129: 192, 192: 192, 193: 256, 4096: 4096, 4097: 6144, 4099: 6144, 6145: 8192, 8192: 8192]
        for (tokens, bucket) in expected { XCTAssertEqual(SparseGEMMDecisionStore.tokenBucket(tokens), bucket, "\(tokens) tokens") }
        // Every count lands in a bucket at least as large and less than 1.5x larger (above 64).
        for tokens in 65...20_000 {
            let bucket = SparseGEMMDecisionStore.tokenBucket(tokens)
            XCTAssertTrue(bucket >= tokens && 2 * bucket <= 3 * tokens + 2, "\(tokens) → \(bucket)")
        }
        XCTAssertEqual(SparseGEMMDecisionStore.key(tokens: 4099, outFeatures: 2048, inFeatures: 2048, dtype: "bfloat16"),
                       SparseGEMMDecisionStore.key(tokens: 4608, outFeatures: 2048, inFeatures: 2048, dtype: "bfloat16"))
        XCTAssertEqual(SparseGEMMDecisionStore.key(tokens: 4099, outFeatures: 2048, inFeatures: 2048, dtype: "bfloat16"), "bfloat16 6144x2048x2048")
        XCTAssertNotEqual(SparseGEMMDecisionStore.key(tokens: 31, outFeatures: 2048, inFeatures: 2048, dtype: "bfloat16"),
                          SparseGEMMDecisionStore.key(tokens: 32, outFeatures: 2048, inFeatures: 2048, dtype: "bfloat16"))
        // A bucket shares the route, not cuSPARSELt's searched algorithm: that runs only at the count it was searched
        // at (or, from an older file, at the key's own count); the bucket's other counts plan the default algorithm.
        let algorithm = CuSPARSELtMatmul.Algorithm(configuration: 3, splitK: 4, splitKMode: 1, splitKBuffers: 2)
        let searched = SparseGEMMDecision(route: .sparseA, algorithm: algorithm, milliseconds: [:], searchedTokens: 4099)
        XCTAssertEqual(searched.algorithm(at: 4099), algorithm)
        XCTAssertNil(searched.algorithm(at: 4608))
        XCTAssertNil(searched.algorithm(at: 6144))
        let older = SparseGEMMDecision(route: .sparseA, algorithm: algorithm, milliseconds: [:])
        XCTAssertEqual(older.algorithm(at: 4096), algorithm)
        XCTAssertNil(older.algorithm(at: 4000), "an exact key of an older file, met by another count of its bucket")
        XCTAssertNil(SparseGEMMDecision(route: .sparseA, milliseconds: [:], searchedTokens: 4099).algorithm(at: 4099))
        let decoded = try JSONDecoder().decode(SparseGEMMDecision.self, from: JSONEncoder().encode(searched))
        XCTAssertEqual(decoded, searched)
    }

    func testACorruptFileIsIgnored() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-decisions-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/d.json"
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: path))
        let store = SparseGEMMDecisionStore(path: path)
        XCTAssertTrue(store.all.isEmpty)
        store.record(SparseGEMMDecision(route: .dense, milliseconds: [:]), for: "k")
        XCTAssertEqual(SparseGEMMDecisionStore(path: path).decision(for: "k")?.route, .dense)
    }

    /// Merged-inference decisions name a form; one saved before the stacked form existed (route "dense" or
    /// "factored", two timings) still decodes but is measured again.
    func testMergedDecisionsFromBeforeTheStackedFormAreMeasuredAgain() throws {
        let old = Data(#"{"route": "factored", "milliseconds": {"dense": 1.2, "factored": 1.1}}"#.utf8)
        XCTAssertNil(try JSONDecoder().decode(SparseGEMMDecision.self, from: old).mergedForm())
        XCTAssertNil(SparseGEMMDecision(route: .dense, milliseconds: ["dense": 1, "factored": 2]).mergedForm())
        let timings = ["folded": 1.7, "factored": 1.6, "stacked": 1.2]
        let threeForms: [MergedInferenceForm] = [.folded, .factored, .stacked]  // (the skinny form takes ≤ 32 rows)
        XCTAssertEqual(SparseGEMMDecision(route: .stacked, milliseconds: timings).mergedForm(among: threeForms), .stacked)
        XCTAssertEqual(SparseGEMMDecision(route: .folded, milliseconds: timings).mergedForm(among: threeForms), .folded)
        // Where the skinny form applies, a decision that did not try it is measured again; one where it failed its
        // check against the folded form stands.
        XCTAssertNil(SparseGEMMDecision(route: .stacked, milliseconds: timings).mergedForm())
        XCTAssertEqual(SparseGEMMDecision(route: .stacked, milliseconds: timings, failures: ["skinny": "disagreed"]).mergedForm(), .stacked)
        XCTAssertEqual(SparseGEMMDecision(route: .skinny, milliseconds: timings.merging(["skinny": 0.7]) { $1 }).mergedForm(), .skinny)
        XCTAssertNil(SparseGEMMDecision(route: .sparseA, milliseconds: ["sparseA": 1]).mergedForm(), "a single GEMM's decision")
        // Patterns the stacked form cannot take (3:4) time only the other two, and such decisions stand.
        let twoForms: [MergedInferenceForm] = [.folded, .factored]
        XCTAssertEqual(SparseGEMMDecision(route: .factored, milliseconds: ["folded": 1.7, "factored": 1.6]).mergedForm(among: twoForms), .factored)
        XCTAssertNil(SparseGEMMDecision(route: .stacked, milliseconds: timings).mergedForm(among: twoForms))
    }

    /// A learned map is packed at the block size taking the fewest bytes: the largest block when every
    /// position keeps its own offset (as before), a mid-sized one when the offsets repeat.
    func testValueMapPackingTakesTheFewestBytes() {
        typealias Packing = SparseOperandCache.Packing
        let count = 1 << 24
        let own = Packing.log2BlockSizes.map { Packing.Candidate(log2Block: $0, periodic: false) }
        XCTAssertEqual(Packing.cheapest(own, count: count), own[0])
        XCTAssertEqual(Packing.bytes(own[0], count: count), 1024 * 4 + count * 2)
        let repeating = Packing.log2BlockSizes.map { Packing.Candidate(log2Block: $0, periodic: $0 <= 12) }
        let choice = Packing.cheapest(repeating, count: count)
        XCTAssertEqual(choice, Packing.Candidate(log2Block: 12, periodic: true), "4096 bases + 4096 offsets")
        XCTAssertEqual(Packing.bytes(choice!, count: count), 4096 * 4 + 4096 * 2)
        XCTAssertNil(Packing.cheapest([], count: count), "no block size fits: the map stays 32-bit")
        XCTAssertEqual(Packing.Candidate(log2Block: 8, periodic: true).offsetMask, 255, "offsets[p & 255]: the first block's")
        XCTAssertEqual(Packing.Candidate(log2Block: 8, periodic: false).offsetMask, -1, "offsets[p]")
        XCTAssertEqual(Packing.Candidate(log2Block: 8, periodic: true).offsets(count: 100), 100, "a map shorter than one block")
    }

    func testWhichPatternsRunOnTheTwoFourKernels() throws {
        XCTAssertTrue(CUDABackend.runsOnTwoFour(.twoFour))
        XCTAssertTrue(CUDABackend.runsOnTwoFour(try .init(n: 1, m: 4)))
        XCTAssertTrue(CUDABackend.runsOnTwoFour(try .init(n: 2, m: 8)))
        XCTAssertFalse(CUDABackend.runsOnTwoFour(try .init(n: 4, m: 8)), "4 of 8 can put 3 in one half")
        XCTAssertFalse(CUDABackend.runsOnTwoFour(try .init(n: 3, m: 4)))
    }

    func testTimedRunsWaitBehindAHoldLongerThanTheHostNeedsToEnqueue() {
        XCTAssertEqual(CUDABackend.holdNanoseconds(enqueueSeconds: []), 1_000_000, "no warm-up: 1 ms")
        XCTAssertEqual(CUDABackend.holdNanoseconds(enqueueSeconds: [2.0, 100e-6, 120e-6]), 350_000, "the fastest warm-up counts (the first compiles)")
        XCTAssertEqual(CUDABackend.holdNanoseconds(enqueueSeconds: [1e-6]), 53_000)
        XCTAssertEqual(CUDABackend.holdNanoseconds(enqueueSeconds: [1.0]), 20_000_000, "capped at 20 ms")
    }
}
