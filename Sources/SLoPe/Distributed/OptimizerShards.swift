/// Which rank updates which tensor when the optimizer state is sharded (ZeRO-1): whole tensors, the largest first,
/// each to the rank with the fewest elements so far (lowest rank on ties), so every rank keeps about 1/N of the
/// moments and the same tensors on every rank and every run.
public enum OptimizerShards {
    /// The owning rank of each tensor of these element counts.
    public static func owners(sizes: [Int], worldSize: Int) -> [Int] {
        precondition(worldSize >= 1, "a world of at least one rank")
        var load = [Int](repeating: 0, count: worldSize)
        var owners = [Int](repeating: 0, count: sizes.count)
        // Stable: equal sizes keep their order, so the result depends on the sizes alone.
        for index in sizes.indices.sorted(by: { sizes[$0] != sizes[$1] ? sizes[$0] > sizes[$1] : $0 < $1 }) {
            let rank = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            owners[index] = rank
            load[rank] += sizes[index]
        }
        return owners
    }
}

/// ZeRO-1 for one optimizer: the rank that updates each of its tensors and alone keeps their moments, and the
/// collectives that hand the updated values — and, for a checkpoint, the moments — to the other ranks. Every rank
/// holds the same owners and calls these in the same order.
public struct OptimizerSharding {
    public let communicator: any Communicator
    /// The owning rank of each of the optimizer's tensors, in its order.
    public private(set) var owners: [Int]

    public init(communicator: any Communicator, owners: [Int]) {
        self.communicator = communicator
        self.owners = owners
    }

    public func owns(_ index: Int) -> Bool { owners[index] == communicator.rank }

    /// Tensors added later (adapters) are shared out among themselves, so earlier tensors keep their owners and moments.
    mutating func append(sizes: [Int]) {
        owners += OptimizerShards.owners(sizes: sizes, worldSize: communicator.worldSize)
    }

    /// Replaces each tensor, on every rank, by its owner's (bit for bit): one broadcast per owning rank. The list must
    /// be the same on every rank.
    func distribute(_ tensors: [(index: Int, value: Tensor)]) throws {
        for root in 0..<communicator.worldSize {
            let group = tensors.filter { owners[$0.index] == root }.map(\.value)
            if !group.isEmpty { try communicator.broadcast(group, from: root) }
        }
    }

    /// Hands every tensor's moments, from its owner, to `body` on every rank, one tensor at a time, so a rank holds
    /// at most one other rank's moments at once. Tensors whose owner has no moments yet (no step, no gradient) are
    /// skipped everywhere. `local` is this rank's moments; `like(index)` makes room for another rank's.
    func gatherMoments(
        _ local: [AdamMoments?], like: (Int) throws -> AdamMoments, _ body: (Int, AdamMoments) throws -> Void
    ) throws {
        // Only an owner says 1, so the mean is 1/N where the owner has moments and 0 where it has none.
        let held = try communicator.average(local.indices.map { owns($0) && local[$0] != nil ? 1 : 0 })
        for index in local.indices where held[index] > 0 {
            let moments = try owns(index) ? local[index]! : like(index)
            try communicator.broadcast([moments.first, moments.second], from: owners[index])
            try body(index, moments)
        }
    }

    /// Every tensor's moments that exist, by the tensor's name, in order: this rank's own without `sharding`, else
    /// gathered from their owners (a collective call; room for another rank's moments is made like `tensors`).
    static func forEachMoment(
        _ moments: [AdamMoments?], names: [String], tensors: [Tensor], dtype: DType, backend: any Backend, sharding: Self?,
        _ body: (String, AdamMoments) throws -> Void
    ) throws {
        guard let sharding else {
            for (name, state) in zip(names, moments) { if let state { try body(name, state) } }
            return
        }
        try sharding.gatherMoments(moments, like: { try AdamMoments(like: tensors[$0], dtype: dtype, backend: backend) }) {
            try body(names[$0], $1)
        }
    }
}
