/// The tensor-core attention kernels instantiated per head dimension: each variant's block shape, its dynamic
/// shared memory and its kernel name, and the CUDA lines that instantiate them (one source of truth for both
/// sides). The first variant of each head dimension is the default; the others stay for `slope bench attention`
/// to measure against it (`SLOPE_ATTENTION_VARIANT` or the backend's `attentionVariant` picks one by index). A
/// variant whose shared memory the device cannot give (an A100 has 163 KB per block, Hopper 227 KB) is passed over.
///
///     let forward = TensorCoreAttentionKernels.forward(headDimension: 128, maxSharedBytes: 227 << 10)!
///     launch(forward.name, grid: (ceil(tq / forward.rowsPerBlock), heads, batch), block: forward.threads,
///            sharedBytes: forward.sharedBytes)
enum TensorCoreAttentionKernels {
    /// `attention_forward_tc<D, NW, MT, BN, Q_SHARED>`.
    struct Forward: Hashable, Sendable {
        let headDimension: Int
        let warps: Int
        /// 16-row query blocks per warp (MT).
        let rowTiles: Int
        /// Keys per K/V tile (BN).
        let keyTile: Int
        /// Whether Q's fragments are read from a shared tile at every key tile instead of kept in registers.
        let queryInShared: Bool

        var rowsPerBlock: Int { 16 * rowTiles * warps }
        var threads: Int { 32 * warps }
        /// K and V tiles twice, then the Q tile; 16-bit elements, rows padded to D + 8.
        var sharedBytes: Int { 2 * (4 * keyTile + (queryInShared ? rowsPerBlock : 0)) * (headDimension + 8) }
        var name: String { "attention_forward_tc_d\(headDimension)_w\(warps)m\(rowTiles)n\(keyTile)\(queryInShared ? "s" : "r")" }
        var label: String { "\(rowsPerBlock)q×\(keyTile)k, \(warps) warps, Q in \(queryInShared ? "shared" : "registers")" }
    }

    /// `attention_backward_tc<D, NW, QT, SPLIT>`.
    struct Backward: Hashable, Sendable {
        let headDimension: Int
        let warps: Int
        /// Query rows per step (QT).
        let queryTile: Int
        /// Warps sharing each 16 keys (SPLIT): 2 halves the dK/dV registers per warp.
        let split: Int

        var keysPerBlock: Int { 16 * warps / split }
        var threads: Int { 32 * warps }
        /// K and V tiles, Q and dO tiles twice, dSᵀ (and Pᵀ when split), lse and δ twice (float).
        var sharedBytes: Int {
            2 * ((2 * keysPerBlock + 4 * queryTile) * (headDimension + 8) + (split > 1 ? 2 : 1) * keysPerBlock * (queryTile + 8))
                + 4 * 4 * queryTile
        }
        var name: String { "attention_backward_tc_d\(headDimension)_w\(warps)q\(queryTile)s\(split)" }
        var label: String { "\(keysPerBlock)k×\(queryTile)q, \(warps) warps\(split > 1 ? ", keys split over 2 warps" : "")" }
    }

    /// Head dimensions with fused kernels: what OPT, GPT-NeoX/Pythia, Phi, LLaMA/Mistral and Gemma use.
    static let headDimensions = [64, 80, 96, 128, 256]

    // Defaults first, each measured fastest on an H100 (docs/benchmarks/training.md, attention); the second
    // variant stays as the measured alternative (and where the first does not fit an A100's shared memory).
    static let forwardVariants: [Int: [Forward]] = [
        64: [.init(64, 4, 2, 64, false), .init(64, 4, 2, 64, true)],
        80: [.init(80, 4, 2, 64, false), .init(80, 4, 2, 64, true)],
        96: [.init(96, 4, 2, 64, true), .init(96, 4, 2, 64, false)],
        128: [.init(128, 4, 2, 64, true), .init(128, 4, 1, 64, false)],
        256: [.init(256, 8, 1, 64, true), .init(256, 4, 1, 32, true)],
    ]

    static let backwardVariants: [Int: [Backward]] = [
        64: [.init(64, 8, 64, 1), .init(64, 4, 64, 1)],
        80: [.init(80, 8, 64, 1), .init(80, 4, 64, 1)],
        96: [.init(96, 8, 64, 1), .init(96, 4, 64, 1)],
        128: [.init(128, 8, 64, 1), .init(128, 8, 32, 1)],
        256: [.init(256, 8, 64, 2), .init(256, 8, 32, 2)],
    ]

    /// The forward variant for this head dimension: the one at index `requested` if it fits the device's shared
    /// memory per block, else the first that does; nil where none is instantiated or fits (the route falls back to GEMMs).
    static func forward(headDimension: Int, requested: Int = 0, maxSharedBytes: Int) -> Forward? {
        choose(forwardVariants[headDimension] ?? [], requested: requested) { $0.sharedBytes <= maxSharedBytes }
    }

    static func backward(headDimension: Int, requested: Int = 0, maxSharedBytes: Int) -> Backward? {
        choose(backwardVariants[headDimension] ?? [], requested: requested) { $0.sharedBytes <= maxSharedBytes }
    }

    private static func choose<V>(_ variants: [V], requested: Int, fits: (V) -> Bool) -> V? {
        if variants.indices.contains(requested), fits(variants[requested]) { return variants[requested] }
        return variants.first(where: fits)
    }

    /// The lines after the templates: every variant and δ per head dimension, as `extern "C"` kernels.
    static var instantiations: String {
        var lines: [String] = []
        for d in headDimensions {
            for f in forwardVariants[d] ?? [] {
                lines.append("""
                    extern "C" __global__ void __launch_bounds__(\(f.threads)) \(f.name)(const T* q, const T* k, const T* v, T* o, \
                    float* lse, SIZES_PARAMS) { attention_forward_tc<\(d), \(f.warps), \(f.rowTiles), \(f.keyTile), \
                    \(f.queryInShared)>(q, k, v, o, lse, SIZES); }
                    """)
            }
            for v in backwardVariants[d] ?? [] {
                lines.append("""
                    extern "C" __global__ void __launch_bounds__(\(v.threads), 1) \(v.name)(const T* q, const T* k, const T* v, \
                    const T* dout, const float* lse, const float* delta, float* dq_accum, T* dk, T* dv, SIZES_PARAMS) { \
                    attention_backward_tc<\(d), \(v.warps), \(v.queryTile), \(v.split)>(q, k, v, dout, lse, delta, dq_accum, dk, dv, SIZES); }
                    """)
            }
            lines.append("""
                extern "C" __global__ void attention_delta_tc_d\(d)(const T* dout, const T* out, float* delta, long long rowHeads) { \
                attention_delta_tc<\(d)>(dout, out, delta, rowHeads); }
                """)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Threads per (row, head) of `attention_delta_tc`: the power of two ≥ D / 8.
    static func deltaLanes(headDimension d: Int) -> Int { d / 8 <= 8 ? 8 : d / 8 <= 16 ? 16 : 32 }
}

extension TensorCoreAttentionKernels.Forward {
    init(_ d: Int, _ warps: Int, _ rowTiles: Int, _ keyTile: Int, _ queryInShared: Bool) {
        self.init(headDimension: d, warps: warps, rowTiles: rowTiles, keyTile: keyTile, queryInShared: queryInShared)
    }
}

extension TensorCoreAttentionKernels.Backward {
    init(_ d: Int, _ warps: Int, _ queryTile: Int, _ split: Int) {
        self.init(headDimension: d, warps: warps, queryTile: queryTile, split: split)
    }
}
