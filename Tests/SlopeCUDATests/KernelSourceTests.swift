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
            .elementwise: ["binary_op", "scale", "accumulate", "trust_ratio_step", "apply_mask", "dropout", "fill", "activation_forward", "activation_backward",
                           "convert_to_float", "convert_from_float", "add_row_vector", "gated_activation_forward",
                           "gated_activation_backward"],
            .reductions: ["reduce_partials", "reduce_final", "column_sums_partial", "column_sum_partials", "sum_of_squares_multi"],
            .normalization: ["softmax_forward", "softmax_backward", "layernorm_forward", "layernorm_backward_input",
                             "layernorm_backward_params_partial", "rmsnorm_forward", "rmsnorm_backward_input",
                             "rmsnorm_backward_weight_partial"],
            .loss: ["embedding_forward", "embedding_backward", "cross_entropy_forward", "cross_entropy_backward"],
            .optimizer: ["adamw", "adamw_mapped", "adamw_bf16_moments", "adamw_mapped_bf16_moments", "adamw_multi", "adamw_multi_bf16_moments"],
            .layout: ["transpose"],
            .sparsity: ["prune_mask", "compress", "decompress", "gather_compressed", "gather_compressed_2_4", "slot_mask", "gather_transpose",
                        "gather_transpose_tiled", "pack_slot_indices", "unpack_slot_indices"],
            .bytes: ["transpose_u8"],
            .compressedLayout: ["encode_slots", "decode_digits", "count_map", "check_counts", "scatter_values", "gather_values", "check_block_offsets",
                                "check_periodic_offsets", "pack_block_offsets", "scatter_values_packed", "gather_values_packed"],
            // Attention kernels are stamped out per head dimension by a macro (`<name>_d##D`).
            .attention: ["rope", "rope_table", "attention_delta", "attention_softmax_rows", "attention_probabilities", "attention_score_gradient",
                         "attention_forward_d##D", "attention_backward_query_d##D", "attention_backward_key_value_d##D"],
            // The tensor-core ones are named by their variant (TensorCoreAttentionKernels), δ per head dimension.
            .attentionTensorCore: TensorCoreAttentionKernels.headDimensions.flatMap { d in
                (TensorCoreAttentionKernels.forwardVariants[d] ?? []).map(\.name) + (TensorCoreAttentionKernels.backwardVariants[d] ?? []).map(\.name)
                    + ["attention_delta_tc_d\(d)"]
            },
            .decoding: ["decode_attention", "decode_attention_wide", "decode_attention_combine", "move_rows", "argmax_rows", "sample_rows", "truncate_rows"],
            .skinnySparse: ["skinny_24_matmul", "skinny_low_rank_epilogue"],
            .skinnySparseTensorCore: ["skinny_24_mma"],
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

    /// Dynamic shared memory asked at launch: what the kernels carve out of it. Every default fits an A100's
    /// 163 KB per block (so the route stays fused there), every variant Hopper's 227 KB.
    func testAttentionSharedMemorySizes() {
        typealias Kernels = TensorCoreAttentionKernels
        // Forward: K and V tiles twice, then the Q tile when it is read from shared memory (16-bit, rows D + 8).
        XCTAssertEqual(Kernels.Forward(64, 4, 2, 64, false).sharedBytes, 2 * 2 * 64 * 72 * 2)
        XCTAssertEqual(Kernels.Forward(128, 4, 2, 64, true).sharedBytes, (2 * 2 * 64 + 128) * 136 * 2)
        XCTAssertEqual(Kernels.Forward(256, 8, 1, 64, true).rowsPerBlock, 128)
        // Backward: K, V; Q, dO twice; dSᵀ (and Pᵀ when split) QT + 8 wide; lse and δ twice.
        XCTAssertEqual(Kernels.Backward(128, 8, 64, 1).sharedBytes, (2 * 128 * 136 + 4 * 64 * 136 + 128 * 72) * 2 + 4 * 64 * 4)
        XCTAssertEqual(Kernels.Backward(256, 8, 32, 2).keysPerBlock, 64)
        XCTAssertEqual(Kernels.Backward(256, 8, 32, 2).sharedBytes, (2 * 64 * 264 + 4 * 32 * 264 + 2 * 64 * 40) * 2 + 4 * 32 * 4)
        for d in Kernels.headDimensions {
            let (forward, backward) = (Kernels.forwardVariants[d] ?? [], Kernels.backwardVariants[d] ?? [])
            XCTAssertFalse(forward.isEmpty || backward.isEmpty, "d = \(d) has kernels both ways")
            for variant in forward { XCTAssertLessThanOrEqual(variant.sharedBytes, 227 << 10, variant.name) }
            for variant in backward { XCTAssertLessThanOrEqual(variant.sharedBytes, 227 << 10, variant.name) }
            XCTAssertNotNil(Kernels.forward(headDimension: d, maxSharedBytes: 163 << 10), "an A100 runs d = \(d) forward fused")
            XCTAssertNotNil(Kernels.backward(headDimension: d, maxSharedBytes: 163 << 10), "an A100 runs d = \(d) backward fused")
        }
    }

    /// The variant asked for where it exists and fits, else the first that fits, else none (the GEMM route).
    func testAttentionVariantChoice() throws {
        typealias Kernels = TensorCoreAttentionKernels
        let variants = try XCTUnwrap(Kernels.backwardVariants[128])
        XCTAssertEqual(Kernels.backward(headDimension: 128, maxSharedBytes: 227 << 10), variants[0])
        XCTAssertEqual(Kernels.backward(headDimension: 128, requested: 1, maxSharedBytes: 227 << 10), variants[1])
        XCTAssertEqual(Kernels.backward(headDimension: 128, requested: 99, maxSharedBytes: 227 << 10), variants[0])
        let smallest = try XCTUnwrap(variants.map(\.sharedBytes).min())
        XCTAssertEqual(Kernels.backward(headDimension: 128, maxSharedBytes: smallest)?.sharedBytes, smallest)
        XCTAssertNil(Kernels.backward(headDimension: 128, maxSharedBytes: smallest - 1))
        XCTAssertNil(Kernels.forward(headDimension: 48, maxSharedBytes: 227 << 10))
    }

    /// Every variant the backend can launch is instantiated under its name, with the template arguments its
    /// launch geometry assumes; the CUDA-core route's kernels exist for the head sizes it lists.
    func testAttentionKernelsExistForEverySupportedHeadDimension() throws {
        typealias Kernels = TensorCoreAttentionKernels
        let source = KernelSources.attentionTensorCore
        for d in Kernels.headDimensions {
            for f in Kernels.forwardVariants[d] ?? [] {
                XCTAssertTrue(source.contains(" \(f.name)("), f.name)
                XCTAssertTrue(source.contains("attention_forward_tc<\(d), \(f.warps), \(f.rowTiles), \(f.keyTile), \(f.queryInShared)>"), f.name)
                XCTAssertTrue(source.contains("__launch_bounds__(\(f.threads)) \(f.name)("), f.name)
            }
            for b in Kernels.backwardVariants[d] ?? [] {
                XCTAssertTrue(source.contains("attention_backward_tc<\(d), \(b.warps), \(b.queryTile), \(b.split)>"), b.name)
                XCTAssertTrue(source.contains("__launch_bounds__(\(b.threads), 1) \(b.name)("), b.name)
            }
            XCTAssertTrue(source.contains("attention_delta_tc_d\(d)("), "δ at d = \(d)")
        }
        for d in KernelSources.attentionHeadDimensions {
            XCTAssertTrue(KernelSources.attention.contains("ATTENTION_KERNELS(\(d))"), "d = \(d)")
            let shape = AttentionShape(batch: 1, queryLength: 4, queryHeads: 2, headDimension: d)
            XCTAssertEqual(try CUDABackend.attentionKernel("attention_forward", shape), "attention_forward_d\(d)")
        }
        XCTAssertEqual(TensorCoreAttentionKernels.deltaLanes(headDimension: 64), 8)
        XCTAssertEqual(TensorCoreAttentionKernels.deltaLanes(headDimension: 80), 16)
        XCTAssertEqual(TensorCoreAttentionKernels.deltaLanes(headDimension: 256), 32)
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
