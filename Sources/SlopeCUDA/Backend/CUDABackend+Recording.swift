import CCUDA
import SlopeCore

// Recording work as a CUDA graph (generation's decode step, DecodeStep.swift): the stream records instead of
// running, every address the ops use is held for the graph, and anything that needs the host in between fails the
// recording (the caller then runs the work op by op).
extension CUDABackend {
    public var recordsWork: Bool { recordsGraphs }

    public func record(_ work: @escaping () throws -> Tensor) throws -> (any RecordedWork)? {
        guard recordsGraphs else { return nil }
        let driver = cudaDevice.driver, stream = cudaDevice.stream
        try cudaDevice.makeCurrent()
        try driver.check(driver.cuStreamBeginCapture(stream, Int32(SLOPE_CU_STREAM_CAPTURE_MODE_RELAXED)), "cuStreamBeginCapture")
        recording.withLock { $0 = [] }
        let result = Result { try cudaDevice.unprofiled(work) }
        let held = recording.withLock { held in
            defer { held = nil }
            return held ?? []
        }
        var graph: CUgraph?
        let ended = driver.cuStreamEndCapture(stream, &graph)
        let output: Tensor
        do {
            output = try result.get()
            try driver.check(ended, "cuStreamEndCapture")
        } catch {
            if let graph { _ = driver.cuGraphDestroy(graph) }
            throw error
        }
        guard let graph else { throw CUDAError.callFailed(call: "cuStreamEndCapture (no graph)", library: .driver, status: 901) }
        var executable: CUgraphExec?
        let instantiated = driver.cuGraphInstantiateWithFlags(&executable, graph, 0)
        guard instantiated == 0, let executable else {
            _ = driver.cuGraphDestroy(graph)
            try driver.check(instantiated, "cuGraphInstantiateWithFlags")
            throw CUDAError.callFailed(call: "cuGraphInstantiateWithFlags (no executable graph)", library: .driver, status: 999)
        }
        return CUDAGraph(device: cudaDevice, graph: graph, executable: executable, output: output, held: held + [try unrestoredStorage(output, "record")])
    }

    public func write(_ values: [Int32], into tensor: Tensor) throws {
        guard tensor.dtype == .int32, tensor.count == values.count else {
            throw TensorError.invalidArgument(operation: "write", reason: "\(values.count) int32 values do not fill a \(tensor.dtype) tensor of \(tensor.shape)")
        }
        try values.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            try upload(base, count: bytes.count, into: tensor)
        }
        try unrestoredStorage(tensor, "write").uploadedRange = values.min().map { $0...values.max()! }
    }
}
