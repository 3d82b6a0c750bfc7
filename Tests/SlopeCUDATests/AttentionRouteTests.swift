@testable import SlopeCUDA
import SlopeCore
import XCTest

/// Which attention route a shape takes, without a GPU: padded batches and dropped probabilities only where they are
/// masked and dropped as the CPU does; cuDNN where it has a plan; the forced routes and their fall-backs.
final class AttentionRouteTests: XCTestCase {
    let causal = AttentionShape(batch: 2, queryLength: 128, queryHeads: 4, headDimension: 64)

    func choose(_ s: AttentionShape, forced: AttentionRoute? = nil, fusable: Bool = true, cudnn: Bool = false) -> AttentionRoute {
        AttentionRoute.choose(for: s, forced: forced, fusable: fusable, cudnnPlanned: { cudnn })
    }

    func testPaddingAndDropoutTakeOnlyRoutesThatMaskAndDropAsTheCPU() {
        var padded = causal
        padded.keyLengths = [128, 40]
        var dropped = causal
        dropped.dropout = SeededDropout(probability: 0.1, seed: 1)
        for s in [padded, dropped] {
            XCTAssertEqual(choose(s, cudnn: true), .fused, "cuDNN is passed over even with a plan")
            XCTAssertEqual(choose(s, forced: .flash), .fused, "flash neither masks padding nor drops")
            XCTAssertEqual(choose(s, forced: .gemm), .gemm)
            XCTAssertEqual(choose(s, fusable: false, cudnn: true), .gemm)
        }
        var zero = causal
        zero.dropout = SeededDropout(probability: 0, seed: 1)
        XCTAssertEqual(choose(zero, cudnn: true), .cudnn, "a probability of 0 drops nothing")
    }

    func testCuDNNWherePlannedThenFusedThenGEMMOrFlash() {
        XCTAssertEqual(choose(causal, cudnn: true), .cudnn)
        XCTAssertEqual(choose(causal), .fused)
        XCTAssertEqual(choose(causal, fusable: false), .gemm)
        let long = AttentionShape(batch: 1, queryLength: 32_768, queryHeads: 2, headDimension: 64)  // 8 GiB of float32 scores
        XCTAssertEqual(choose(long, fusable: false), .flash)
        XCTAssertEqual(choose(causal, forced: .cudnn, fusable: true), .fused, "a forced cuDNN without a plan: the automatic choice without it")
        XCTAssertEqual(choose(causal, forced: .fused, fusable: false), .gemm)
        var odd = causal
        odd.headDimension = 48
        XCTAssertEqual(choose(odd, forced: .flash), .gemm, "no flash kernel at this head dimension")
        XCTAssertEqual(choose(causal, forced: .flash), .flash)
    }
}
