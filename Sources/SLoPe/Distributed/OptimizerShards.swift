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
