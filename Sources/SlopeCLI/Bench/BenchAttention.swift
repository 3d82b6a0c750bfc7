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

    @Option(help: "Comma-separated BATCHxTOKENSxHEADSxHEADDIM shapes (default on CUDA: 4x2048 tokens at head dimensions 64, 80, 96, 128 (32 heads) and 256 (16 heads), and 2x4096x16x128; 1x256x4x64 on the CPU).")
    var shapes: String?

    @Option(help: "CUDA routes to time, comma-separated: cudnn, fused, gemm, flash (flash is slow at large shapes).")
    var routes: String = "cudnn,fused,gemm"

    @Flag(help: "Time every instantiated variant of the fused kernels, not only the default.")
    var variants = false

    @Option(help: "Element type: float32, bfloat16 or float16 (default: bfloat16 on CUDA, float32 on the CPU).")
    var dtype: String?

    @Flag(name: .customLong("full"), help: "Every query sees every key (default: causal).")
    var nonCausal = false

    @OptionGroup var timing: TimingOptions

    static let defaultCUDAShapes = "4x2048x32x64,4x2048x32x80,4x2048x32x96,4x2048x32x128,4x2048x16x256,2x4096x16x128"

    struct Result: Encodable {
        let shape: String
        let route: String
        let forwardMilliseconds: Double
        let backwardMilliseconds: Double
        let forwardTFLOPS: Double
        let backwardTFLOPS: Double
    }

    func parsedShapes() throws -> [AttentionShape] {
        let text = shapes ?? (device == .cuda ? Self.defaultCUDAShapes : "1x256x4x64")
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
        let cudaRoutes = try routes.split(separator: ",").map { name in
            guard let route = AttentionRoute(rawValue: String(name)) else {
                throw ValidationError("--routes: '\(name)' is not one of \(AttentionRoute.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return route
        }
        let gpu = backend as? CUDABackend
        print("slope bench attention — \(backend.name), \(elementType), \(nonCausal ? "full" : "causal"), \(clock)")
        var table = TextTable(headers: ["B×T×H×D", "route", "forward ms", "TFLOP/s", "backward ms", "TFLOP/s"])
        var kernels = TextTable(headers: ["D", "fused", "forward kernel", "backward kernel"])
        var described = Set<String>()
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
            // Each CUDA route forced in turn, the fused one once per variant pair with --variants; the CPU has one.
            var runs: [(route: AttentionRoute?, variant: (forward: Int, backward: Int), name: String)] = []
            if gpu == nil { runs = [(nil, (0, 0), "cpu")] }
            for route in gpu == nil ? [] : cudaRoutes {
                let counts = CUDABackend.attentionVariantCounts(headDimension: shape.headDimension)
                if route == .fused, variants, max(counts.forward, counts.backward) > 1 {
                    for index in 0..<max(counts.forward, counts.backward) {
                        runs.append((route, (min(index, counts.forward - 1), min(index, counts.backward - 1)), "fused v\(index)"))
                    }
                } else {
                    runs.append((route, (0, 0), "\(route)"))
                }
            }
            for (route, variant, name) in runs {
                gpu?.attentionRoute = route
                gpu?.attentionVariant = variant
                if route == .fused, let gpu, let kernel = try gpu.fusedAttentionDescription(shape, dtype: elementType),
                   described.insert("\(shape.headDimension) \(name)").inserted {
                    kernels.append(["\(shape.headDimension)", name, kernel.forward, kernel.backward])
                }
                // A forced cudnn route runs slope's kernels where cuDNN has no plan: say so instead of timing those.
                if route == .cudnn, let gpu {
                    let refusal = [false, true].compactMap { backward -> String? in
                        if case .failure(let why) = gpu.cudnnAttentionStatus(shape, dtype: elementType, backward: backward) { return why.reason }
                        return nil
                    }.first
                    if let refusal {
                        table.append([label, name, "no cuDNN plan: \(refusal.prefix(100))", "", "", ""])
                        continue
                    }
                }
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
        gpu?.attentionRoute = nil
        gpu?.attentionVariant = (0, 0)
        print(table.render())
        if !kernels.rows.isEmpty { print("\nFused kernels (tiles, threads, registers per thread):\n" + kernels.render()) }
        if let path = timing.json {
            try writeJSON(results, to: path)
            print("wrote \(path)")
        }
    }
}
