/// Multi-tensor launches (AdamW over many small tensors, a gradient norm): one kernel launch per batch of up to
/// ``capacity`` tensors instead of one per tensor, the tensors' addresses passed in the kernel's parameters as a
/// table (`MULTI_TENSORS` entries and a count, by value), so nothing is uploaded that could wait on the stream.
/// Tensor i of a batch owns `ceil(count / chunk)` consecutive blocks of the grid from its `firstBlock` on.
struct MultiTensorLaunch<Item> {
    /// The kernels' `MULTI_TENSORS`: 48 entries of up to 64 bytes keep the table under cuLaunchKernel's 4 KB.
    static var capacity: Int { 48 }

    var items: [(item: Item, firstBlock: Int, count: Int)] = []
    /// Blocks of the whole launch.
    var blocks = 0

    /// `items` in order, batched `perLaunch` at a time (at most ``capacity``); tensors with no elements are left out.
    static func batches(_ items: [Item], chunk: Int, perLaunch: Int = capacity, count: (Item) -> Int) -> [MultiTensorLaunch] {
        precondition(chunk > 0 && (1...capacity).contains(perLaunch), "a multi-tensor chunk must be positive, at most \(capacity) per launch")
        var launches: [MultiTensorLaunch] = []
        var current = MultiTensorLaunch()
        for item in items {
            let elements = count(item)
            guard elements > 0 else { continue }
            if current.items.count == perLaunch {
                launches.append(current)
                current = MultiTensorLaunch()
            }
            current.items.append((item, current.blocks, elements))
            current.blocks += (elements + chunk - 1) / chunk
        }
        if !current.items.isEmpty { launches.append(current) }
        return launches
    }

    /// The table as the kernel declares it: `entryBytes`-byte entries (each written by `entry`, which must fill
    /// exactly that many), padded to ``capacity``, then the entry count as a 32-bit integer, padded to 8 bytes.
    func table(entryBytes: Int, _ entry: (inout TableWriter, (item: Item, firstBlock: Int, count: Int)) throws -> Void) rethrows -> [UInt8] {
        var writer = TableWriter()
        for item in items {
            let start = writer.bytes.count
            try entry(&writer, item)
            precondition(writer.bytes.count - start == entryBytes, "a multi-tensor table entry must be \(entryBytes) bytes")
        }
        writer.bytes += [UInt8](repeating: 0, count: (Self.capacity - items.count) * entryBytes)
        writer.int32(Int32(items.count))
        writer.int32(0)
        return writer.bytes
    }
}

/// Little-endian fields of a kernel parameter struct.
struct TableWriter {
    var bytes: [UInt8] = []
    mutating func uint64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func int64(_ value: Int) { uint64(UInt64(bitPattern: Int64(value))) }
    mutating func uint32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func int32(_ value: Int32) { uint32(UInt32(bitPattern: value)) }
    mutating func float(_ value: Float) { uint32(value.bitPattern) }
}
