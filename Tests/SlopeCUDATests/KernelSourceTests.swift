import FoundationEssentials
@testable import SlopeCUDA
import SlopeCore
import XCTest

final class KernelSourceTests: XCTestCase {
    func testTranslationUnitsAreThePreludeTheElementTypeAndTheFamily() throws {
        for family in KernelFamily.allCases {
            for (dtype, type) in [(DType.float32, "float"), (.bfloat16, "bf16"), (.float16, "f16")] {
                let unit = try family.translationUnit(for: dtype)
                XCTAssertTrue(unit.hasPrefix(KernelSources.prelude))
                XCTAssertTrue(unit.contains("\ntypedef \(type) T;\n"), "\(family) \(dtype)")
                XCTAssertTrue(unit.hasSuffix(family.source))
            }
            XCTAssertThrowsError(try family.translationUnit(for: .float64)) { error in
                XCTAssertTrue("\(error)".contains("float64"), "\(error)")
            }
        }
    }

    /// Every kernel the backend launches is defined, `extern "C"`, in the family it is launched from.
    func testEveryLaunchedKernelIsDefined() {
        let launched: [KernelFamily: [String]] = [
            .elementwise: ["binary_op", "scale", "accumulate", "apply_mask", "fill", "activation_forward", "activation_backward",
                           "convert_to_float", "convert_from_float", "add_row_vector"],
            .reductions: ["reduce_partials", "reduce_final", "column_sums_partial", "column_sum_partials"],
            .normalization: ["softmax_forward", "softmax_backward", "layernorm_forward", "layernorm_backward_input",
                             "layernorm_backward_params_partial", "rmsnorm_forward", "rmsnorm_backward_input",
                             "rmsnorm_backward_weight_partial"],
            .loss: ["embedding_forward", "embedding_backward", "cross_entropy_forward", "cross_entropy_backward"],
            .optimizer: ["adamw", "adamw_mapped"],
            .layout: ["transpose"],
            .sparsity: ["prune_mask", "compress", "decompress", "gather_compressed", "gather_compressed_2_4", "slot_mask", "gather_transpose",
                        "gather_transpose_tiled", "pack_slot_indices", "unpack_slot_indices"],
            .bytes: ["transpose_u8"],
            .compressedLayout: ["encode_slots", "decode_digits", "count_map", "check_counts", "scatter_values", "gather_values", "check_block_offsets",
                                "check_periodic_offsets", "pack_block_offsets", "scatter_values_packed", "gather_values_packed"],
            // Attention kernels are stamped out per head dimension by a macro (`<name>_d##D`).
            .attention: ["rope", "attention_delta", "attention_softmax_rows", "attention_probabilities", "attention_score_gradient",
                         "attention_forward_d##D", "attention_backward_query_d##D", "attention_backward_key_value_d##D"],
            .attentionTensorCore: ["attention_forward_tc_d##D", "attention_backward_kv_tc_d##D", "attention_backward_q_tc_d##D",
                                   "attention_delta_tc_d##D", "attention_backward_tc_d##D", "attention_forward_tc_d##D##_wide"],
            .timing: ["hold_stream"],
        ]
        XCTAssertEqual(Set(launched.keys), Set(KernelFamily.allCases))
        for (family, names) in launched {
            let defined = Set(family.source.split(separator: "\n").compactMap { line -> String? in
                guard let range = line.firstRange(of: "__global__ void ") else { return nil }
                var name = line[range.upperBound...]
                if name.hasPrefix("__launch_bounds__("), let close = name.firstIndex(of: ")") {
                    name = name[name.index(after: close)...].drop { $0 == " " }
                }
                return String(name.prefix { $0 != "(" })
            })
            for name in names { XCTAssertTrue(defined.contains(name), "\(family) lacks \(name)") }
            XCTAssertEqual(family.source.components(separatedBy: "extern \"C\"").count - 1, defined.count, "\(family): every kernel is extern \"C\"")
        }
    }

    /// Dynamic shared memory asked at launch: what the kernels carve out of it, within Hopper's 227 KB opt-in
    /// limit (above 48 KB the launch opts in).
    func testAttentionSharedMemorySizes() {
        // The forward's K and V tiles, two of each: the static arrays it had before (2 · 2 · BN · (D + 8) halves).
        XCTAssertEqual(KernelSources.tensorCoreForwardSharedBytes(headDimension: 64, keys: 64), 2 * 2 * 64 * 72 * 2)
        XCTAssertEqual(KernelSources.tensorCoreForwardSharedBytes(headDimension: 128, keys: 32), 2 * 2 * 32 * 136 * 2)
        XCTAssertEqual(KernelSources.tensorCoreForwardSharedBytes(headDimension: 128, keys: 64), 69_632)
        // Key-major backward: Q, dO ×2, lse and δ ×2 — the static arrays it had before; the one-kernel variant
        // adds K (D + 8 wide) and dS (64 + 8 wide).
        XCTAssertEqual(KernelSources.keyMajorBackwardSharedBytes(headDimension: 64, withQueryGradient: false), 4 * 64 * 72 * 2 + 4 * 64 * 4)
        XCTAssertEqual(KernelSources.keyMajorBackwardSharedBytes(headDimension: 128, withQueryGradient: false), 4 * 32 * 136 * 2 + 4 * 32 * 4)
        XCTAssertEqual(KernelSources.keyMajorBackwardSharedBytes(headDimension: 64, withQueryGradient: true), (4 * 64 * 72 + 64 * 72 + 64 * 72) * 2 + 4 * 64 * 4)
        XCTAssertEqual(KernelSources.keyMajorBackwardSharedBytes(headDimension: 128, withQueryGradient: true), (4 * 32 * 136 + 64 * 136 + 32 * 72) * 2 + 4 * 32 * 4)
        for d in [64, 128] {
            XCTAssertLessThanOrEqual(KernelSources.keyMajorBackwardSharedBytes(headDimension: d, withQueryGradient: true), 227 << 10)
        }
    }

    /// The backend asks for `<name>_d<D>` only for head dimensions the macro is instantiated with.
    func testAttentionKernelsExistForEverySupportedHeadDimension() throws {
        for d in KernelSources.attentionHeadDimensions {
            XCTAssertTrue(KernelSources.attention.contains("ATTENTION_KERNELS(\(d))"), "d = \(d)")
            if let rows = KernelSources.tensorCoreForwardBlockRows[d] {
                // TC_FORWARD(D, MT, BN) covers 64·MT query rows per block: the launch grid must use the same.
                XCTAssertTrue(KernelSources.attentionTensorCore.contains("TC_FORWARD(\(d), \(rows / 64), "), "tensor-core d = \(d)")
            }
            if KernelSources.tensorCoreBackwardHeadDimensions.contains(d) {
                XCTAssertTrue(KernelSources.attentionTensorCore.contains("TC_BACKWARD(\(d), "), "tensor-core backward d = \(d)")
            }
            let shape = AttentionShape(batch: 1, queryLength: 4, queryHeads: 2, headDimension: d)
            XCTAssertEqual(try CUDABackend.attentionKernel("attention_forward", shape), "attention_forward_d\(d)")
        }
        let opt = AttentionShape(batch: 1, queryLength: 4, queryHeads: 2, headDimension: 64)
        let llama = AttentionShape(batch: 1, queryLength: 4, queryHeads: 2, headDimension: 128)
        XCTAssertTrue(CUDABackend.hasTensorCoreForward(opt, dtype: .bfloat16) && CUDABackend.hasTensorCoreBackward(opt, dtype: .float16))
        XCTAssertTrue(CUDABackend.hasTensorCoreForward(llama, dtype: .bfloat16) && CUDABackend.hasTensorCoreBackward(llama, dtype: .bfloat16))
        XCTAssertFalse(CUDABackend.hasTensorCoreBackward(AttentionShape(batch: 1, queryLength: 4, queryHeads: 2, headDimension: 80), dtype: .bfloat16))
        XCTAssertFalse(CUDABackend.hasTensorCoreForward(opt, dtype: .float32) || CUDABackend.hasTensorCoreBackward(opt, dtype: .float32))
        let odd = AttentionShape(batch: 1, queryLength: 4, queryHeads: 2, headDimension: 48)
        XCTAssertThrowsError(try CUDABackend.attentionKernel("attention_forward", odd)) { error in
            XCTAssertTrue("\(error)".contains("supported: 16, 32, 64, 80, 96, 128"), "\(error)")
        }
    }

    func testCacheKeyChangesWithEveryInput() {
        let base = KernelCache.key(source: "a", architecture: "sm_90", options: ["-x"], compilerVersion: "13.0")
        XCTAssertEqual(base.count, 32)
        XCTAssertEqual(base, KernelCache.key(source: "a", architecture: "sm_90", options: ["-x"], compilerVersion: "13.0"))
        for other in [
            KernelCache.key(source: "b", architecture: "sm_90", options: ["-x"], compilerVersion: "13.0"),
            KernelCache.key(source: "a", architecture: "sm_80", options: ["-x"], compilerVersion: "13.0"),
            KernelCache.key(source: "a", architecture: "sm_90", options: ["-y"], compilerVersion: "13.0"),
            KernelCache.key(source: "a", architecture: "sm_90", options: ["-x"], compilerVersion: "12.8"),
            KernelCache.key(source: "a\0sm_90", architecture: "", options: ["-x"], compilerVersion: "13.0"),
        ] {
            XCTAssertNotEqual(base, other)
        }
    }

    func testCacheRoundTripAndLocation() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-cache-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cache = KernelCache(environment: ["SLOPE_CACHE_DIR": folder, "HOME": "/home/x"])
        XCTAssertEqual(cache.directory, folder + "/kernels")
        XCTAssertNil(cache.load("abc"))
        cache.store([1, 2, 3, 250], for: "abc")
        XCTAssertEqual(cache.load("abc"), [1, 2, 3, 250])
        XCTAssertEqual(KernelCache(environment: ["HOME": "/home/x"]).directory, "/home/x/.cache/slope/kernels")
        XCTAssertNil(KernelCache(environment: [:]).directory)
    }
}

final class EmbeddingSegmentsTests: XCTestCase {
    func testTokensAreGroupedByIDInTokenOrder() {
        let segments = EmbeddingSegments(tokenIDs: [3, 1, 3, 0, 1, 3], vocabulary: 5)
        XCTAssertEqual(segments.ids, [0, 1, 3])
        XCTAssertEqual(segments.starts, [0, 1, 3, 6])
        XCTAssertEqual(segments.positions, [3, 1, 4, 0, 2, 5])
        XCTAssertEqual(segments.packed, [0, 1, 3, 0, 1, 3, 6, 3, 1, 4, 0, 2, 5])
    }

    func testNoTokensGiveNoSegments() {
        let segments = EmbeddingSegments(tokenIDs: [], vocabulary: 4)
        XCTAssertEqual(segments, EmbeddingSegments(tokenIDs: [], vocabulary: 0))
        XCTAssertEqual(segments.packed, [0])
    }
}
