import CCUDA
import SlopeCore

/// Recorded work as an instantiated CUDA graph: one `cuGraphLaunch` replays every kernel, copy and library call
/// the recording issued, at the same addresses. The memory behind those addresses is held (and kept from
/// eviction) for the graph's life, so nothing else is handed it while a replay may still write it.
final class CUDAGraph: RecordedWork {
    let device: CUDADevice
    private let graph: CUgraph
    private let executable: CUgraphExec
    /// The recorded work's result, overwritten by every replay.
    let output: Tensor
    private let held: [CUDAStorage]

    init(device: CUDADevice, graph: CUgraph, executable: CUgraphExec, output: Tensor, held: [CUDAStorage]) {
        self.device = device
        self.graph = graph
        self.executable = executable
        self.output = output
        var seen = Set<ObjectIdentifier>()
        self.held = held.filter { seen.insert(ObjectIdentifier($0)).inserted }
        for storage in self.held { storage.graphHolds += 1 }
    }

    func replay() throws -> Tensor {
        try device.makeCurrent()
        try device.driver.check(device.driver.cuGraphLaunch(executable, device.stream), "cuGraphLaunch")
        return output
    }

    deinit {
        try? device.makeCurrent()
        try? device.synchronize()  // a replay in flight still uses the memory released below
        _ = device.driver.cuGraphExecDestroy(executable)
        _ = device.driver.cuGraphDestroy(graph)
        for storage in held { storage.graphHolds -= 1 }
    }
}
