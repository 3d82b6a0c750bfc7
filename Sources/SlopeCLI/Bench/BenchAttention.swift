import ArgumentParser
import SLoPe
import SlopeCUDA

/// `slope bench attention`: forward and backward time of each attention route at training shapes.
struct BenchAttention: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Causal self-attention forward and backward: time and TFLOP/s of each route (CUDA) or of the CPU kernels.",
        discussion: """
            Each shape is BATCHxTOKENSxHEADSxHEADDIM (query and key/value heads alike). TFLOP/s counts what \
            FlashAttention's benchmarks count: 4·B·H·T²·D for the forward, 2.5× that for the backward, halved when causal. \
            bench/pytorch/bench_attention.py times PyTorch's scaled_dot_product_attention at the same shapes.
            """
    )

    @Option(help: "Where to run: \(BenchDevice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var device: BenchDevice = .cpu

    @Option(help: "Comma-separated BATCHxTOKENSxHEADSxHEADDIM shapes (default: OPT-1.3B's 4x2048x32x64 and a 128-wide 2x4096x16x128 on CUDA; 1x256x4x64 on the CPU).")
    var shapes: String?

    @Option(help: "Element type: float32, bfloat16 or float16 (default: bfloat16 on CUDA, float32 on the CPU).")
    var dtype: String?

    @Flag(name: .customLong("full"), help: "Every query sees every key (default: causal).")
    var nonCausal = false

    @OptionGroup var timing: TimingOptions

    struct Result: Encodable {
        let shape: String
        let route: String
        let forwardMilliseconds: Double
        let backwardMilliseconds: Double
        let forwardTFLOPS: Double
        let backwardTFLOPS: Double
    }

    func parsedShapes() throws -> [AttentionShape] {
        let text = shapes ?? (device == .cuda ? "4x2048x32x64,2x4096x16x128" : "1x256x4x64")
        return try text.split(separator: ",").map { item in
            let parts = item.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 4, parts.allSatisfy({ $0 > 0 }) else {
                throw ValidationError("shape '\(item)' is not BATCHxTOKENSxHEADSxHEADDIM, e.g. 4x2048x32x64")
            }
            return AttentionShape(batch: parts[0], queryLength: parts[1], queryHeads: parts[2], headDimension: parts[3], causal: !nonCausal)
        }
    }

    func run() throws {
        guard let elementType = DType(rawValue: dtype ?? (device == .cuda ? "bfloat16" : "float32")),
              [.float32, .bfloat16, .float16].contains(elementType)
        else { throw ValidationError("--dtype must be float32, bfloat16 or float16") }
        let (backend, time, clock) = try device.backend(timing)
        // Every CUDA route forced in turn, the fused one also with its one-kernel backward and (d = 128) its
        // narrow-tile forward; the CPU has one.
        let routes: [(route: AttentionRoute?, singleBackward: Bool, narrowForward: Bool)] = backend is CUDABackend
            ? [(.fused, false, false), (.fused, true, false), (.fused, false, true), (.gemm, false, false), (.flash, false, false)]
            : [(nil, false, false)]
        print("slope bench attention — \(backend.name), \(elementType), \(nonCausal ? "full" : "causal"), \(clock)")
        var table = TextTable(headers: ["B×T×H×D", "route", "forward ms", "TFLOP/s", "backward ms", "TFLOP/s"])
        var results: [Result] = []
        for shape in try parsedShapes() {
            var generator = SeededGenerator(seed: 3)
            let rows = shape.batch * shape.queryLength, width = shape.queryHeads * shape.headDimension
            let q = try backend.randomNormal([rows, width], dtype: elementType, using: &generator)
            let k = try backend.randomNormal([rows, width], dtype: elementType, using: &generator)
            let v = try backend.randomNormal([rows, width], dtype: elementType, using: &generator)
            let dOut = try backend.randomNormal([rows, width], dtype: elementType, using: &generator)
            let forwardFLOPs = 4 * Double(shape.batch * shape.queryHeads * shape.headDimension) * Double(shape.queryLength * shape.keyLength)
                * (shape.causal ? 0.5 : 1)
            let label = "\(shape.batch)×\(shape.queryLength)×\(shape.queryHeads)×\(shape.headDimension)"
            for (route, singleBackward, narrowForward) in routes {
                if narrowForward && !CUDABackend.hasWideTensorCoreForward(headDimension: shape.headDimension) { continue }
                (backend as? CUDABackend)?.attentionRoute = route
                (backend as? CUDABackend)?.singleKernelAttentionBackward = singleBackward
                (backend as? CUDABackend)?.wideTensorCoreForward = !narrowForward
                var name = route.map { "\($0)" } ?? "cpu"
                if route == .fused, !CUDABackend.hasTensorCoreBackward(shape, dtype: elementType) { name += " (gemm backward)" }
                if singleBackward { name += ", 1 bwd kernel" }
                if narrowForward { name += ", narrow fwd" }
                do {
                    let saved = try backend.attention(query: q, key: k, value: v, shape: shape)
                    let forward = try time { _ = try backend.attention(query: q, key: k, value: v, shape: shape) }
                    let backward = try time {
                        _ = try backend.attentionBackward(dOut, query: q, key: k, value: v, saved: saved, shape: shape)
                    }
                    let result = Result(
                        shape: label, route: name, forwardMilliseconds: forward, backwardMilliseconds: backward,
                        forwardTFLOPS: forwardFLOPs / forward / 1e9, backwardTFLOPS: 2.5 * forwardFLOPs / backward / 1e9)
                    results.append(result)
                    table.append([
                        label, name, formatted(forward, digits: 3), formatted(result.forwardTFLOPS, digits: 1),
                        formatted(backward, digits: 3), formatted(result.backwardTFLOPS, digits: 1),
                    ])
                } catch {
                    table.append([label, name, "failed: \(error)", "", "", ""])
                }
            }
        }
        (backend as? CUDABackend)?.attentionRoute = nil
        (backend as? CUDABackend)?.singleKernelAttentionBackward = false
        (backend as? CUDABackend)?.wideTensorCoreForward = false
        print(table.render())
        if let path = timing.json {
            try writeJSON(results, to: path)
            print("wrote \(path)")
        }
    }
}
