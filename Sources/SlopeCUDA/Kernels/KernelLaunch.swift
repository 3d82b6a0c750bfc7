import CCUDA

/// One kernel parameter, passed by value as `cuLaunchKernel` expects.
enum KernelArgument {
    case pointer(CUdeviceptr)
    /// A device pointer that may be NULL.
    case optionalPointer(CUdeviceptr?)
    case int32(Int32)
    case int64(Int64)
    case float(Float)
    /// A struct passed by value (a multi-tensor kernel's table of addresses), laid out as the kernel declares it.
    case bytes([UInt8])

    fileprivate var size: Int {
        switch self {
        case .pointer, .optionalPointer, .int64: return 8
        case .int32, .float: return 4
        case .bytes(let bytes): return bytes.count
        }
    }

    fileprivate func store(at pointer: UnsafeMutableRawPointer) {
        switch self {
        case .pointer(let value): pointer.storeBytes(of: value, as: CUdeviceptr.self)
        case .optionalPointer(let value): pointer.storeBytes(of: value ?? 0, as: CUdeviceptr.self)
        case .int32(let value): pointer.storeBytes(of: value, as: Int32.self)
        case .int64(let value): pointer.storeBytes(of: value, as: Int64.self)
        case .float(let value): pointer.storeBytes(of: value, as: Float.self)
        case .bytes(let bytes): bytes.withUnsafeBytes { if let base = $0.baseAddress { pointer.copyMemory(from: base, byteCount: $0.count) } }
        }
    }
}

extension CUDADevice {
    /// Launches `function` on the device's stream; `name` labels errors.
    func launch(
        _ function: CUfunction, name: String, grid: (Int, Int, Int), block: (Int, Int, Int), sharedBytes: Int = 0,
        _ arguments: [KernelArgument]
    ) throws {
        guard grid.0 > 0, grid.1 > 0, grid.2 > 0 else { return }  // nothing to do for empty tensors
        // Each argument in its own 8-byte-aligned slot (cuLaunchKernel copies them by the kernel's signature).
        let slotSizes = arguments.map { ($0.size + 7) / 8 * 8 }
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(slotSizes.reduce(0, +), 8), alignment: 8)
        defer { storage.deallocate() }
        var slots: [UnsafeMutableRawPointer?] = []
        var offset = 0
        for (argument, size) in zip(arguments, slotSizes) {
            let slot = storage + offset
            argument.store(at: slot)
            slots.append(slot)
            offset += size
        }
        try makeCurrent()
        let status = slots.withUnsafeMutableBufferPointer { parameters in
            driver.cuLaunchKernel(
                function, UInt32(grid.0), UInt32(grid.1), UInt32(grid.2), UInt32(block.0), UInt32(block.1), UInt32(block.2),
                UInt32(sharedBytes), stream, parameters.baseAddress, nil)
        }
        try driver.check(status, "cuLaunchKernel(\(name))")
    }
}

/// Blocks of 256 threads covering `count` elements, capped so grid-stride loops do the rest.
func elementwiseGrid(_ count: Int) -> (Int, Int, Int) {
    (min(max((count + 255) / 256, 1), 65_535), 1, 1)
}

/// Blocks of 256 threads for a kernel whose threads take a 16-byte pack each (`map1`, `map2`, grid-stride over the
/// packs, single elements where a pointer is unaligned): a thread per pack, not per element — sized by elements, 7 of
/// every 8 blocks of a bf16 kernel would start only to find no pack left (65,535 blocks for a 27M-element GELU, of
/// which 13,312 had work).
func packedGrid(_ count: Int, elementBytes: Int) -> (Int, Int, Int) {
    elementwiseGrid((count * elementBytes + 15) / 16)
}

/// Threads of a row-norm block (LayerNorm, RMSNorm: one block per row): about two 16-byte packs of the row a thread,
/// 64 to 256. A 1024-wide bf16 row (BERT-large) takes 64 threads instead of 256, half of them idle, so an SM holds
/// four times the rows in flight, and the block sums wait on two warps, not eight.
func normBlock(columns: Int, elementBytes: Int) -> (Int, Int, Int) {
    let packs = (columns * elementBytes + 15) / 16
    return (min(256, max(64, ((packs + 1) / 2 + 31) / 32 * 32)), 1, 1)
}
