import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SLoPe
import SlopeCUDA
import Synchronization

/// Where training and inference run.
enum DeviceOption: String, ExpressibleByArgument, CaseIterable {
    /// CUDA when a usable GPU and its libraries are found, else the CPU.
    case auto
    case cpu
    case cuda
}

/// A backend with what the progress output needs to know about it.
struct ComputeDevice {
    let backend: any Backend
    let isGPU: Bool
    /// Dense bf16/fp16 tensor-core peak in FLOP/s, for MFU (nil when unknown).
    let peakFLOPS: Double?

    static func make(_ option: DeviceOption, gpu: Int = 0) throws -> ComputeDevice {
        if option == .cpu { return ComputeDevice(backend: CPUBackend(), isGPU: false, peakFLOPS: nil) }
        do {
            let backend = try CUDABackend(ordinal: gpu)
            return ComputeDevice(backend: backend, isGPU: true, peakFLOPS: peakFLOPS(forGPU: backend.cudaDevice.name))
        } catch {
            if option == .cuda { throw ValidationError("--device cuda: \(error)") }
            printError("note: no usable CUDA GPU, running on the CPU (`slope doctor` says why)")
            return ComputeDevice(backend: CPUBackend(), isGPU: false, peakFLOPS: nil)
        }
    }

    /// Published dense 16-bit tensor-core peaks (no sparsity).
    static func peakFLOPS(forGPU name: String) -> Double? {
        let table: [(String, Double)] = [
            ("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12), ("A10", 125e12),
        ]
        return table.first { name.contains($0.0) }?.1
    }

    /// Published HBM bandwidths in bytes/s (what decoding a batch of one is bound by).
    static func memoryBandwidth(forGPU name: String) -> Double? {
        let table: [(String, Double)] = [
            ("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100 80GB", 2.039e12), ("A100", 1.555e12), ("L40S", 0.864e12),
            ("A10", 0.6e12),
        ]
        return table.first { name.contains($0.0) }?.1
    }

    /// The default element type: bfloat16 on a GPU, float32 on the CPU (which computes in float32 anyway).
    var defaultDType: DType { isGPU ? .bfloat16 : .float32 }
}

/// Writes a line to standard error.
func printError(_ text: String) {
    var stream = StandardError()
    let rank = consoleRank.load(ordering: .relaxed)
    print((rank > 0 ? "rank \(rank): " : "") + text, to: &stream)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        writeToStandardError(string)
    }
}

/// Prints a line to standard output unbuffered, so progress shows at once even when piped to a file.
/// This process's rank in a data-parallel job (0 when it trains alone): only rank 0 reports progress, and the
/// others' errors name their rank.
let consoleRank = Atomic<Int>(0)

func say(_ text: String) {
    guard consoleRank.load(ordering: .relaxed) == 0 else { return }
    writeUnbuffered(text + "\n", to: 1)
}

func writeToStandardError(_ text: String) { writeUnbuffered(text, to: 2) }

private func writeUnbuffered(_ text: String, to descriptor: Int32) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
}

/// Whether standard error is a terminal (progress bars redraw in place only there).
var standardErrorIsTerminal: Bool { isatty(2) != 0 }
