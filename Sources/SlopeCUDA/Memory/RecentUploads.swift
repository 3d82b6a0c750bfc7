import Synchronization

/// The last few small arrays uploaded for generation's ops, with their device copies. A decode step hands every
/// layer the same cache rows, positions and sequence ranges, and an upload waits for the stream: remembered, each is
/// uploaded once per step instead of once per layer. The device copies are never written, so handing one out again
/// is safe for as long as it is remembered.
final class RecentUploads<Value: Sendable>: @unchecked Sendable {
    let capacity: Int
    private let entries = Mutex<[(key: [Int32], value: Value)]>([])

    init(capacity: Int = 8) { self.capacity = capacity }

    /// The copy of `key` made earlier, or `upload(key)`, remembered in place of the least recently used one.
    func value(for key: [Int32], upload: ([Int32]) throws -> Value) rethrows -> Value {
        if let found = entries.withLock({ entries -> Value? in
            guard let index = entries.firstIndex(where: { $0.key == key }) else { return nil }
            let entry = entries.remove(at: index)
            entries.append(entry)
            return entry.value
        }) { return found }
        let value = try upload(key)
        entries.withLock { entries in
            entries.append((key, value))
            if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
        }
        return value
    }
}
