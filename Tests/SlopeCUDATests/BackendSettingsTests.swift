@testable import SlopeCUDA
import SlopeCore
import XCTest

/// The CUDA backend's environment switches, parsed without a GPU: the defaults, each value taken, and every bad value
/// refused with its variable's name and the values it takes.
final class BackendSettingsTests: XCTestCase {
    func testDefaultsWithoutTheVariables() throws {
        let settings = try BackendSettings([:])
        XCTAssertNil(settings.sparseRoute)
        XCTAssertTrue(settings.sparseBiasEpilogue)
        XCTAssertEqual(settings.fusions, Set(Fusion.allCases))
        XCTAssertNil(settings.attentionRoute)
        XCTAssertEqual(settings.attentionVariant.forward, 0)
        XCTAssertNil(settings.mergedInferenceForm)
        XCTAssertFalse(settings.pinnedUploads)
        XCTAssertEqual(settings.skinnyKernel, .mma)
        XCTAssertEqual(settings.skinnyWarpsPerMultiprocessor, SkinnySparseGEMM.defaultWarpsPerMultiprocessor)
        XCTAssertEqual(settings.skinnyDecisionsTag, "mma")
        XCTAssertEqual(settings.denseGEMMChoice, .auto)
        XCTAssertTrue(settings.recordsGraphs)
        XCTAssertEqual(try BackendSettings(["SLOPE_ATTENTION": "auto", "SLOPE_SPARSE_GEMM": "auto", "SLOPE_MERGED_INFERENCE": "auto"]).attentionRoute, nil)
        XCTAssertEqual(try BackendSettings(["SLOPE_DENSE_GEMM": "auto"]).denseGEMMChoice, .auto)
        XCTAssertEqual(try BackendSettings(["SLOPE_DENSE_GEMM": "skinny"]).denseGEMMChoice, .skinny)
        XCTAssertEqual(try BackendSettings([:]).decodeAttentionKernel, .wide)
        XCTAssertEqual(try BackendSettings(["SLOPE_DECODE_ATTENTION": "plain"]).decodeAttentionKernel, .plain)
    }

    func testValuesTaken() throws {
        let settings = try BackendSettings([
            "SLOPE_SPARSE_GEMM": "skinny", "SLOPE_SPARSE_BIAS": "kernel", "SLOPE_FUSIONS": "residual-norm,multi-tensor", "SLOPE_ATTENTION": "fused",
            "SLOPE_ATTENTION_VARIANT": "1,2", "SLOPE_MERGED_INFERENCE": "stacked", "SLOPE_PINNED_UPLOADS": "1", "SLOPE_SKINNY_KERNEL": "plain",
            "SLOPE_DENSE_GEMM": "cublaslt", "SLOPE_CUDA_GRAPHS": "0", "SLOPE_SKINNY_WARPS": "32",
        ])
        XCTAssertEqual(settings.sparseRoute, "skinny")
        XCTAssertFalse(settings.sparseBiasEpilogue)
        XCTAssertEqual(settings.fusions, [.residualNorm, .multiTensor])
        XCTAssertEqual(settings.attentionRoute, .fused)
        XCTAssertEqual(settings.attentionVariant.forward, 1)
        XCTAssertEqual(settings.attentionVariant.backward, 2)
        XCTAssertEqual(settings.mergedInferenceForm, .stacked)
        XCTAssertTrue(settings.pinnedUploads)
        XCTAssertEqual(settings.skinnyKernel, .plain)
        XCTAssertEqual(settings.skinnyWarpsPerMultiprocessor, 32)
        XCTAssertEqual(settings.skinnyDecisionsTag, "plain-w32", "another launch shape keeps its own decisions")
        XCTAssertEqual(settings.denseGEMMChoice, .cublaslt)
        XCTAssertFalse(settings.recordsGraphs)
    }

    func testBadValuesAreRefusedByName() {
        let refusals: [(String, String, String)] = [
            ("SLOPE_SPARSE_GEMM", "cusparse", "auto, dense, sparseA, sparseB or skinny"),
            ("SLOPE_SPARSE_BIAS", "yes", "epilogue or kernel"),
            ("SLOPE_FUSIONS", "everything", "must be on, off or a comma-separated list"),
            ("SLOPE_ATTENTION", "flash2", "auto, cudnn, fused, gemm or flash"),
            ("SLOPE_ATTENTION_VARIANT", "1", "FORWARD,BACKWARD"),
            ("SLOPE_ATTENTION_VARIANT", "0,-1", "FORWARD,BACKWARD"),
            ("SLOPE_MERGED_INFERENCE", "merged", "auto, folded, factored, stacked or skinny"),
            ("SLOPE_PINNED_UPLOADS", "true", "1 (stage uploads through pinned memory) or 0"),
            ("SLOPE_SKINNY_KERNEL", "auto", "mma, staged or plain"),
            ("SLOPE_DENSE_GEMM", "gemv", "auto, cublaslt or skinny"),
            ("SLOPE_DECODE_ATTENTION", "fast", "plain or wide"),
            ("SLOPE_CUDA_GRAPHS", "yes", "1 (record decode steps) or 0"),
            ("SLOPE_SKINNY_WARPS", "2", "warps per SM from 4 to 64"),
            ("SLOPE_SKINNY_WARPS", "many", "warps per SM from 4 to 64"),
        ]
        for (variable, value, expected) in refusals {
            XCTAssertThrowsError(try BackendSettings([variable: value]), variable) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(variable) && message.contains(expected) && message.contains("'\(value)'"), message)
            }
        }
    }
}
