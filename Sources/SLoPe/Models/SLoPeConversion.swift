/// Which linear layers of a model become SLoPe layers, and with which N:M pattern.
///
/// The defaults follow the paper's setup: every linear of every block is 2:4 sparse except layers whose
/// aspect ratio (longer side / shorter side) exceeds 5, which stay dense as in the original code.
/// Embeddings, norms and the output projection are always dense.
public struct SparsityPlan: Codable, Equatable, Sendable {
    public var pattern: NMPattern
    /// The first `leadingBlocks` blocks use `leadingPattern` instead (e.g. 2:8 for the first few blocks).
    public var leadingBlocks: Int
    public var leadingPattern: NMPattern?
    public var skipFirstBlock: Bool
    public var skipLastBlock: Bool
    /// Keep the attention projections (q, k, v, o) dense.
    public var skipAttention: Bool
    public var maximumAspectRatio: Double
    public var mode: SparseStorageMode
    /// How the forward masks are chosen (nil: N:M along the reduction dimension; the others need simulated storage).
    public var maskSelection: MaskSelection?

    public init(
        pattern: NMPattern = .twoFour, leadingBlocks: Int = 0, leadingPattern: NMPattern? = nil, skipFirstBlock: Bool = false,
        skipLastBlock: Bool = false, skipAttention: Bool = false, maximumAspectRatio: Double = 5, mode: SparseStorageMode = .compressed,
        maskSelection: MaskSelection = .reductionDimension
    ) {
        self.maskSelection = maskSelection == .reductionDimension ? nil : maskSelection
        self.pattern = pattern
        self.leadingBlocks = leadingBlocks
        self.leadingPattern = leadingPattern
        self.skipFirstBlock = skipFirstBlock
        self.skipLastBlock = skipLastBlock
        self.skipAttention = skipAttention
        self.maximumAspectRatio = maximumAspectRatio
        self.mode = mode
    }

    /// The pattern for a linear of `block` with the given sides, or `nil` to keep it dense.
    public func pattern(block: Int, of blocks: Int, isAttention: Bool, inFeatures: Int, outFeatures: Int) -> NMPattern? {
        if (skipFirstBlock && block == 0) || (skipLastBlock && block == blocks - 1) || (skipAttention && isAttention) { return nil }
        let aspect = Double(max(inFeatures, outFeatures)) / Double(max(min(inFeatures, outFeatures), 1))
        guard aspect <= maximumAspectRatio else { return nil }
        let chosen = block < leadingBlocks ? (leadingPattern ?? pattern) : pattern
        // Both sides must split into groups of M (rows for the double-pruned transpose).
        guard inFeatures % chosen.m == 0, outFeatures % chosen.m == 0 else { return nil }
        return chosen
    }
}

/// What ``BlockModel/convertToSLoPe(_:)`` did, layer by layer.
public struct SparsityReport: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let pattern: NMPattern?
        public let inFeatures: Int
        public let outFeatures: Int
    }

    public let entries: [Entry]
    /// How the masks were chosen.
    public var selection: MaskSelection = .reductionDimension

    public init(entries: [Entry], selection: MaskSelection = .reductionDimension) {
        self.entries = entries
        self.selection = selection
    }

    public var sparseCount: Int { entries.filter { $0.pattern != nil }.count }
    /// One line per decision, for the CLI.
    public var summary: String {
        let sparse = entries.filter { $0.pattern != nil }
        let patterns = Dictionary(grouping: sparse, by: { $0.pattern!.description }).map { "\($0.value.count)× \($0.key)" }.sorted()
        let masks: String
        switch selection {
        case .reductionDimension: masks = patterns.joined(separator: ", ")
        case .outputDimension: masks = patterns.joined(separator: ", ") + " along the output dimension, simulated"
        case .unstructured(let sparsity): masks = "unstructured, \(fixedPoint(100 * sparsity, decimals: 1))% removed, simulated"
        }
        return "\(sparse.count) of \(entries.count) block linears sparse (\(masks))"
            + (sparse.count < entries.count ? "; dense: \(entries.filter { $0.pattern == nil }.map(\.name).prefix(4).joined(separator: ", "))"
                + (entries.count - sparse.count > 4 ? ", …" : "") : "")
    }
}

/// A model whose blocks each have a ``SelfAttention`` and a ``FeedForward``: decoders (``TransformerModel``) and
/// encoders (``EncoderModel``). SLoPe conversion, adapters and merging work on their projections.
public protocol BlockModel: AnyObject {
    /// Each block's attention and MLP, in order.
    var projectionBlocks: [(attention: SelfAttention, mlp: FeedForward)] { get }
}

extension TransformerModel: BlockModel {
    public var projectionBlocks: [(attention: SelfAttention, mlp: FeedForward)] { blocks.map { ($0.attention, $0.mlp) } }
}

extension EncoderModel: BlockModel {
    public var projectionBlocks: [(attention: SelfAttention, mlp: FeedForward)] { blocks.map { ($0.attention, $0.mlp) } }
}

extension BlockModel {
    /// Replaces the blocks' dense linears by SLoPe layers (weights pruned N:M by magnitude) as `plan` says.
    @discardableResult
    public func convertToSLoPe(_ plan: SparsityPlan = SparsityPlan()) throws -> SparsityReport {
        var entries: [SparsityReport.Entry] = []
        func convert(_ module: any Module, _ block: Int, _ isAttention: Bool) throws -> any Module {
            guard let linear = module as? Linear else { return module }
            let name = linear.weight.name.replacingSuffix(".weight", with: "")
            let pattern = plan.pattern(
                block: block, of: projectionBlocks.count, isAttention: isAttention, inFeatures: linear.inFeatures, outFeatures: linear.outFeatures)
            entries.append(.init(name: name, pattern: pattern, inFeatures: linear.inFeatures, outFeatures: linear.outFeatures))
            guard let pattern else { return linear }
            return try SparseLinear(converting: linear, name: name, pattern: pattern, mode: plan.mode, selection: plan.maskSelection ?? .reductionDimension)
        }
        try replaceProjections(convert)
        return SparsityReport(entries: entries, selection: plan.maskSelection ?? .reductionDimension)
    }

    /// The SLoPe layers of the blocks.
    public var sparseLinears: [SparseLinear] {
        projectionBlocks.flatMap { $0.attention.projections + $0.mlp.projections }.compactMap { $0 as? SparseLinear }
    }

    /// Attaches a lazy low-rank adapter of `rank` to every SLoPe layer; returns the new parameters.
    public func attachAdapters(rank: Int, seed: UInt64) throws -> [Parameter] {
        var generator = SeededGenerator(seed: seed)
        return try sparseLinears.flatMap { layer in
            try layer.attachAdapter(rank: min(rank, layer.inFeatures, layer.outFeatures), generator: &generator).parameters
        }
    }

    /// Swaps every SLoPe layer for its merged inference form (one sparse GEMM for weight and adapter);
    /// adapters' down projections are pruned N:M first. The model can no longer be trained afterwards.
    public func mergeForInference() throws {
        func merge(_ module: any Module) throws -> any Module {
            guard let sparse = module as? SparseLinear else { return module }
            try sparse.adapter?.pruneDown(pattern: sparse.weight.pattern)
            return try sparse.merged()
        }
        try replaceProjections { module, _, _ in try merge(module) }
    }

    /// Replaces each block linear by `transform(module, block index, is attention)`.
    func replaceProjections(_ transform: (any Module, Int, Bool) throws -> any Module) throws {
        for (index, block) in projectionBlocks.enumerated() {
            let attention = block.attention
            attention.query = try transform(attention.query, index, true)
            attention.key = try transform(attention.key, index, true)
            attention.value = try transform(attention.value, index, true)
            attention.output = try transform(attention.output, index, true)
            let mlp = block.mlp
            if let gate = mlp.gate { mlp.gate = try transform(gate, index, false) }
            mlp.up = try transform(mlp.up, index, false)
            mlp.down = try transform(mlp.down, index, false)
        }
    }
}
