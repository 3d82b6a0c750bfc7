import CCUDA

/// One kernel parameter, passed by value as `cuLaunchKernel` expects.
enum KernelArgument {
    case pointer(CUdeviceptr)
    /// A device pointer that may be NULL.
    case optionalPointer(CUdeviceptr?)
    case int32(Int32)
    case int64(Int64)
    case float(Float)

    fileprivate var size: Int {
        switch self {
        case .pointer, .optionalPointer, .int64: return 8
        case .int32, .float: return 4
        }
    }

    fileprivate func store(at pointer: UnsafeMutableRawPointer) {
        switch self {
        case .pointer(let value): pointer.storeBytes(of: value, as: CUdeviceptr.self)
        case .optionalPointer(let value): pointer.storeBytes(of: value ?? 0, as: CUdeviceptr.self)
        case .int32(let value): pointer.storeBytes(of: value, as: Int32.self)
        case .int64(let value): pointer.storeBytes(of: value, as: Int64.self)
        case .float(let value): pointer.storeBytes(of: value, as: Float.self)
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
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(arguments.count, 1) * 8, alignment: 8)
        defer { storage.deallocate() }
        var slots: [UnsafeMutableRawPointer?] = []
        for (index, argument) in arguments.enumerated() {
            let slot = storage + index * 8
            argument.store(at: slot)
            slots.append(slot)
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
