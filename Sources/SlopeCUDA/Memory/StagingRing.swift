/// Where the next host→device copy stages its bytes in a fixed pinned buffer, used as a ring: copies queue in stream
/// order, so each region's fence (an event recorded after its copy) completes after every older region's. A new
/// region that would overlap regions still in flight must wait for the newest such fence; the older ones are then
/// done too, and all of them are handed back (to be reused). Pure bookkeeping, so its rules are tested without a GPU.
struct StagingRing<Fence> {
    let capacity: Int
    /// Offsets are multiples of this (so every staged copy starts aligned).
    let alignment: Int
    private(set) var head = 0
    /// Regions whose copies may still be running, oldest first.
    private(set) var inFlight: [(range: Range<Int>, fence: Fence)] = []

    init(capacity: Int, alignment: Int = 256) {
        self.capacity = capacity
        self.alignment = alignment
    }

    /// A place for `length` bytes, and the fences no longer in flight once the last of them has completed: wait for
    /// that one before writing there (none: nothing in the way). Nil when `length` exceeds the ring (the caller
    /// copies another way). Call ``record(_:fence:)`` once the copy is queued.
    mutating func reserve(_ length: Int) -> (range: Range<Int>, released: [Fence])? {
        guard length > 0, length <= capacity else { return nil }
        let start = head + length <= capacity ? head : 0
        let range = start..<(start + length)
        var released: [Fence] = []
        if let newest = inFlight.lastIndex(where: { $0.range.overlaps(range) }) {
            released = inFlight[...newest].map(\.fence)
            inFlight.removeFirst(newest + 1)
        }
        head = min(capacity, (range.upperBound + alignment - 1) / alignment * alignment)
        return (range, released)
    }

    /// The copy into `range` is queued; `fence` completes when it has run.
    mutating func record(_ range: Range<Int>, fence: Fence) {
        inFlight.append((range, fence))
    }
}
