/// Token positions grouped by id, for the embedding gradient: one GPU block per distinct id sums its tokens'
/// rows in token order, so the update needs no atomics, runs in parallel and is deterministic.
struct EmbeddingSegments: Equatable {
    /// Distinct ids, ascending.
    var ids: [Int32] = []
    /// `positions[starts[s] ..< starts[s + 1]]` are the tokens of `ids[s]`, ascending.
    var starts: [Int32] = [0]
    var positions: [Int32] = []

    /// A stable counting sort of `tokenIDs` (all in `0 ..< vocabulary`, checked by the caller).
    init(tokenIDs: [Int32], vocabulary: Int) {
        var counts = [Int32](repeating: 0, count: vocabulary + 1)
        for id in tokenIDs { counts[Int(id) + 1] += 1 }
        for v in 0..<vocabulary where counts[v + 1] > 0 {
            ids.append(Int32(v))
            starts.append(starts.last! + counts[v + 1])
        }
        for v in 0..<vocabulary { counts[v + 1] += counts[v] }  // counts[v] = first slot of id v
        positions = [Int32](repeating: 0, count: tokenIDs.count)
        for (position, id) in tokenIDs.enumerated() {
            positions[Int(counts[Int(id)])] = Int32(position)
            counts[Int(id)] += 1
        }
    }

    /// `ids`, `starts`, `positions` in one array, the layout the kernel reads.
    var packed: [Int32] { ids + starts + positions }
}
