import CCUDA

/// A second stream on a device, ordered against the device's own by events: work issued here after
/// ``waitForMainStream()`` starts once everything issued on the main stream so far is done, and main-stream work
/// issued after ``joinMainStream()`` waits for everything issued here. Gradients are averaged here while backward
/// goes on computing on the main stream.
public final class CUDASideStream: @unchecked Sendable {
    let device: CUDADevice
    let stream: CUstream
    /// Recorded on the main stream, waited for here.
    private let mainReached: CUevent
    /// Recorded here, waited for on the main stream.
    private let sideReached: CUevent

    public init(on device: CUDADevice) throws {
        self.device = device
        let driver = device.driver
        try device.makeCurrent()
        var stream: CUstream?, mainReached: CUevent?, sideReached: CUevent?
        try driver.check(driver.cuStreamCreate(&stream, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate")
        try driver.check(driver.cuEventCreate(&mainReached, 2 /* CU_EVENT_DISABLE_TIMING */), "cuEventCreate")
        try driver.check(driver.cuEventCreate(&sideReached, 2), "cuEventCreate")
        guard let stream, let mainReached, let sideReached else { throw CUDAError.noDevice(reason: "cuStreamCreate or cuEventCreate returned nothing") }
        (self.stream, self.mainReached, self.sideReached) = (stream, mainReached, sideReached)
    }

    /// Work issued on this stream from now on runs after what the main stream has been given so far.
    public func waitForMainStream() throws {
        let driver = device.driver
        try device.makeCurrent()
        try driver.check(driver.cuEventRecord(mainReached, device.stream), "cuEventRecord")
        try driver.check(driver.cuStreamWaitEvent(stream, mainReached, 0), "cuStreamWaitEvent")
    }

    /// Work issued on the main stream from now on runs after what this stream has been given so far.
    public func joinMainStream() throws {
        let driver = device.driver
        try device.makeCurrent()
        try driver.check(driver.cuEventRecord(sideReached, stream), "cuEventRecord")
        try driver.check(driver.cuStreamWaitEvent(device.stream, sideReached, 0), "cuStreamWaitEvent")
    }

    deinit {
        let driver = device.driver
        _ = driver.cuStreamSynchronize(stream)
        _ = driver.cuEventDestroy(mainReached)
        _ = driver.cuEventDestroy(sideReached)
        _ = driver.cuStreamDestroy(stream)
    }
}
