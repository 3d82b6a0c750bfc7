import CCUDA

/// Device memory straight from the driver.
struct DriverMemoryProvider: DeviceMemoryProvider, @unchecked Sendable {
    let device: CUDADevice

    func allocate(_ bytes: Int) throws -> UInt64? {
        try device.makeCurrent()
        var address: CUdeviceptr = 0
        let status = device.driver.cuMemAlloc(&address, bytes)
        if status == 2 { return nil }  // CUDA_ERROR_OUT_OF_MEMORY: the allocator frees its cache and retries
        try device.driver.check(status, "cuMemAlloc(\(bytes) bytes)")
        return address
    }

    func free(_ address: UInt64) throws {
        try device.driver.check(device.driver.cuMemFree(address), "cuMemFree")
    }

    func freeBytes() -> Int { (try? device.memoryInfo().free) ?? 0 }
}
