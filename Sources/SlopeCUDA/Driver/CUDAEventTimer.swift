import CCUDA

extension CUDABackend {
    /// Median GPU time of `body` in milliseconds, measured with CUDA events around each run on the backend's
    /// stream, after `warmup` untimed runs.
    ///
    /// Each run is queued behind `hold_stream`, a kernel that keeps the GPU busy for a few times the host's time
    /// to enqueue `body` (the fastest warm-up's), so the events time the GPU's work alone. Without it an idle
    /// GPU records the start event at once and then waits for the host to launch the first kernel, so host
    /// work (a layer's checks, the sparse GEMM's route, plan and allocation lookups) was counted as GPU time,
    /// although in a training step it overlaps the kernels already queued. (On an H200 the benchmark's SLoPe
    /// forward trailed the same GEMM timed alone by 5–10%; this may be part of why, not yet measured.)
    ///
    /// Runs unprofiled under `SLOPE_PROFILE`: its per-op synchronisation would wait out the hold and time the gaps
    /// between ops, which favoured routes of fewer calls (dense GEMMs) in the route decisions of profiled runs.
    public func medianMilliseconds(repeats: Int, warmup: Int, _ body: () throws -> Void) throws -> Double {
        try cudaDevice.unprofiled { try eventMedianMilliseconds(repeats: repeats, warmup: warmup, body) }
    }

    private func eventMedianMilliseconds(repeats: Int, warmup: Int, _ body: () throws -> Void) throws -> Double {
        let driver = cudaDevice.driver
        try cudaDevice.makeCurrent()
        var start: CUevent?, end: CUevent?
        try driver.check(driver.cuEventCreate(&start, 0), "cuEventCreate")
        try driver.check(driver.cuEventCreate(&end, 0), "cuEventCreate")
        defer {
            _ = driver.cuEventDestroy(start)
            _ = driver.cuEventDestroy(end)
        }
        let clock = ContinuousClock()
        var enqueueSeconds: [Double] = []
        for _ in 0..<warmup {
            let begin = clock.now
            try body()
            enqueueSeconds.append((clock.now - begin) / .seconds(1))
            try cudaDevice.synchronize()
        }
        let hold = Self.holdNanoseconds(enqueueSeconds: enqueueSeconds)
        var samples: [Double] = []
        for _ in 0..<repeats {
            try launch(.timing, "hold_stream", dtype: .float32, grid: (1, 1, 1), block: (1, 1, 1), [.int64(hold)])
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

    /// How long to hold the stream before a timed run: three times the fastest warm-up's enqueue time plus
    /// 50 µs, within 50 µs … 20 ms (1 ms without warm-up runs). The first warm-up may compile kernels or
    /// search plans, hence the fastest.
    static func holdNanoseconds(enqueueSeconds: [Double]) -> Int64 {
        guard let fastest = enqueueSeconds.min() else { return 1_000_000 }
        return Int64(min(20e-3, max(50e-6, 3 * fastest + 50e-6)) * 1e9)
    }
}
