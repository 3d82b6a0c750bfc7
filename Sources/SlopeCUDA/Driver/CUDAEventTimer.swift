import CCUDA

extension CUDABackend {
    /// Median GPU time of `body` in milliseconds, measured with CUDA events around each run on the
    /// backend's stream, after `warmup` untimed runs.
    public func medianMilliseconds(repeats: Int, warmup: Int, _ body: () throws -> Void) throws -> Double {
        let driver = cudaDevice.driver
        try cudaDevice.makeCurrent()
        var start: CUevent?, end: CUevent?
        try driver.check(driver.cuEventCreate(&start, 0), "cuEventCreate")
        try driver.check(driver.cuEventCreate(&end, 0), "cuEventCreate")
        defer {
            _ = driver.cuEventDestroy(start)
            _ = driver.cuEventDestroy(end)
        }
        for _ in 0..<warmup { try body() }
        var samples: [Double] = []
        for _ in 0..<repeats {
            try driver.check(driver.cuEventRecord(start, cudaDevice.stream), "cuEventRecord")
            try body()
            try driver.check(driver.cuEventRecord(end, cudaDevice.stream), "cuEventRecord")
            try driver.check(driver.cuEventSynchronize(end), "cuEventSynchronize")
            var milliseconds: Float = 0
            try driver.check(driver.cuEventElapsedTime(&milliseconds, start, end), "cuEventElapsedTime")
            samples.append(Double(milliseconds))
        }
        samples.sort()
        let middle = samples.count / 2
        return samples.count % 2 == 1 ? samples[middle] : (samples[middle - 1] + samples[middle]) / 2
    }
}
