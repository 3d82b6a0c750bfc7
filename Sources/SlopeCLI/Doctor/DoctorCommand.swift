import ArgumentParser
import SLoPe
import SlopeCUDA

/// `slope doctor`: what hardware and libraries slope sees, then every GPU op checked against the CPU.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Show the GPU, driver and CUDA libraries, then check every GPU op against the CPU backend.",
        discussion: """
            Each check runs an op on fresh random inputs on the GPU and on the CPU and compares them: \
            max |gpu − cpu| / max |cpu| must be ≤ 1e-5 for float32 and ≤ 2e-2 for bfloat16; masks must match exactly. \
            Exits with status 1 if any check fails. On a machine without an NVIDIA GPU it says so and checks nothing.
            """
    )

    @Option(help: "GPU ordinal to check.")
    var gpu = 0

    @Option(help: "Run only the checks whose names contain this text (ignoring case), e.g. BERT or attention.")
    var only: String?

    func run() throws {
        print("slope doctor")
        print("  cpu backend   \(CPUBackend().name)")
        for (library, outcome) in CUDALibraries.report() {
            switch outcome {
            case .success(let path): print("  \(library.name.padding(12))  \(path)")
            case .failure(CUDAError.libraryNotFound) where library == .cudnn:
                print("  \(library.name.padding(12))  not found: attention runs on slope's kernels (for cuDNN's, install \(library.provider))")
            case .failure(CUDAError.libraryNotFound): print("  \(library.name.padding(12))  not found (install \(library.provider))")
            case .failure(let error): print("  \(library.name.padding(12))  not usable: \(error)")
            }
        }
        let nccl = Result { try NCCLCommunicator.version() }
        switch nccl {
        case .success(let version): print("  \("NCCL".padding(12))  \(version) (multi-GPU training)")
        case .failure(CUDAError.libraryNotFound):
            print("  \("NCCL".padding(12))  not found: only multi-GPU training needs it (install \(CUDALibrary.nccl.provider))")
        case .failure(let error): print("  \("NCCL".padding(12))  not usable: \(error)")
        }
        let backend: CUDABackend
        do {
            backend = try CUDABackend(ordinal: gpu)
        } catch {
            print("\nNo CUDA GPU can be used: \(error)")
            print("slope runs on the CPU backend here; GPU checks were skipped.")
            return
        }
        let device = backend.cudaDevice
        print("  gpu           \(backend.name), \(formatted(Double(device.totalMemory) / Double(1 << 30), digits: 1)) GiB")
        print("  nvrtc         \(backend.compilerVersion)    cuBLASLt \(backend.cublasLtVersion)    cuSPARSELt \(backend.cusparseLtVersion.map(String.init) ?? "not loaded: sparse GEMMs run dense")")
        switch backend.cudnnVersion {
        case .success(let version): print("  cuDNN         \(version): fused attention route")
        case .failure(let reason): print("  cuDNN         not in use (\(reason)): attention runs on slope's kernels")
        }
        do { print("  skinny 2:4    \(try backend.skinnyTensorCoreDescription())") } catch { print("  skinny 2:4    the tensor-core kernel did not build: \(error)") }
        print("\nChecking every GPU op against the CPU backend (float32 and bfloat16)…")
        let clock = ContinuousClock()
        var checks: [BackendComparison.Check] = []
        let elapsed = clock.measure {
            let comparison = BackendComparison(reference: CPUBackend(), candidate: backend)
            comparison.only = only
            checks = comparison.runAll()
            // Every sparse GEMM route on its own, whatever the measured choice would be.
            let automatic = backend.sparseRoute
            for route in ["sparseA", "sparseB", "dense"] {
                backend.sparseRoute = route
                checks += comparison.runSparseGEMMChecks(suffix: "(\(route))")
            }
            // Each skinny 2:4 kernel at decoding's row counts: one launch, and several (8 rows each; the tensor-core
            // kernel takes 32 in one).
            backend.sparseRoute = "skinny"
            let skinnyKernel = backend.skinnyKernel
            for kernel in SkinnySparseGEMM.Kernel.allCases {
                backend.skinnyKernel = kernel
                for tokens in kernel == .mma ? [5, 19, 32] : [5, 19] {
                    checks += comparison.runSparseGEMMChecks(tokens: tokens, suffix: "(skinny, \(kernel))")
                }
            }
            // sparseA's other way to add the bias (a kernel after the GEMM, or cuSPARSELt's epilogue).
            let epilogue = backend.sparseBiasEpilogue
            backend.sparseRoute = "sparseA"
            backend.sparseBiasEpilogue = !epilogue
            checks += comparison.runSparseGEMMChecks(suffix: "(sparseA, bias \(epilogue ? "kernel" : "epilogue"))")
            backend.sparseBiasEpilogue = epilogue
            backend.sparseRoute = automatic
            checks += comparison.runSparseGEMMChecks(suffix: "(measured choice)")
            // Every form of merged inference on its own, its GEMMs on cuSPARSELt where it takes them.
            let mergedForm = backend.mergedInferenceForm
            backend.sparseRoute = "sparseA"
            for form in MergedInferenceForm.allCases {
                backend.mergedInferenceForm = form
                // (the skinny form takes at most 32 rows: at more, a forced skinny form runs factored)
                for kernel in form == .skinny ? SkinnySparseGEMM.Kernel.allCases : [skinnyKernel] {
                    backend.skinnyKernel = kernel
                    for tokens in form == .skinny ? [5, 19] : [128] {
                        checks += comparison.runMergedInferenceCheck(tokens: tokens, suffix: "(\(form)\(form == .skinny ? " \(kernel)" : ""), sparseA)")
                    }
                }
            }
            backend.skinnyKernel = skinnyKernel
            backend.mergedInferenceForm = mergedForm
            backend.sparseRoute = automatic
            // Every attention route on its own (the automatic choice was checked above).
            let attentionRoute = backend.attentionRoute
            for route in AttentionRoute.allCases {
                backend.attentionRoute = route
                checks += comparison.runAttentionChecks(suffix: " (\(route))")
            }
            // The fused route's other kernel variants (the defaults were checked above), index by index.
            backend.attentionRoute = .fused
            let variants = CUDABackend.fusedAttentionHeadDimensions.map { CUDABackend.attentionVariantCounts(headDimension: $0) }
            for index in 1..<max(1, variants.map { max($0.forward, $0.backward) }.max() ?? 1) {
                backend.attentionVariant = (index, index)
                checks += comparison.runAttentionChecks(suffix: " (fused, variant \(index) where there is one)")
            }
            backend.attentionVariant = (0, 0)
            backend.attentionRoute = attentionRoute
            checks += comparison.runModelChecks()
            // Generation's checks again with the decode-attention kernel that is not the default (the plain one,
            // unless SLOPE_DECODE_ATTENTION chose it; the chosen kernel ran above).
            if only == nil {
                let decodeKernel = backend.decodeAttentionKernel
                backend.decodeAttentionKernel = decodeKernel == .wide ? .plain : .wide
                (comparison.only, comparison.nameSuffix) = ("decode", " (\(backend.decodeAttentionKernel) decode attention)")
                checks += comparison.runModelChecks()
                (comparison.only, comparison.nameSuffix) = (nil, "")
                backend.decodeAttentionKernel = decodeKernel
            }
            // The encoder again in float32, where it takes no fused kernel: whole-model gradients summed in other orders
            // than the CPU's agree to ~1e-6 relative, so 1e-4 leaves room for rounding and none for a wrong op.
            checks += comparison.runEncoderModelChecks(dtype: .float32, tolerance: 1e-4)
            checks += comparison.runCheckpointCheck()
        }
        // Which checked shapes the cudnn route ran on cuDNN (the rest ran on slope's kernels), and why not.
        if case .success = backend.cudnnVersion {
            var plans = TextTable(headers: ["attention shape (bfloat16)", "cuDNN forward", "cuDNN backward"])
            for s in BackendComparison.attentionShapes {
                func status(_ backward: Bool) -> String {
                    switch backend.cudnnAttentionStatus(s, dtype: .bfloat16, backward: backward) {
                    case .success(let plan): return plan.components(separatedBy: ", ").dropFirst().joined(separator: ", ")
                    case .failure(let why): return "slope's kernels: \(String(why.reason.prefix(90)))"
                    }
                }
                plans.append(["B\(s.batch) Tq\(s.queryLength) Tk\(s.keyLength) H\(s.queryHeads)/\(s.keyValueHeads) D\(s.headDimension)\(s.causal ? "" : " full")",
                              status(false), status(true)])
            }
            print(plans.render())
        }
        var ncclFailure: String?
        if case .success = nccl, only == nil {
            ncclFailure = Self.checkNCCL(backend)
            print("  NCCL, one rank: all-reduce, broadcast, reduce-scatter, all-gather    \(ncclFailure == nil ? "pass" : "FAIL: \(ncclFailure!)")")
        }
        var table = TextTable(headers: ["check", "dtype", "rel. error", "tolerance", "result"])
        for check in checks {
            let error = check.failure != nil ? "threw" : (check.error == 0 ? "0" : String(format6(check.error)))
            table.append([check.name, check.dtype.rawValue, error, String(format6(check.tolerance)), check.passed ? "pass" : "FAIL"])
        }
        print(table.render())
        let failed = checks.filter { !$0.passed }
        for check in failed {
            if let failure = check.failure {
                print("\n\(check.name) (\(check.dtype)): \(failure)")
            } else if let worst = check.worstOutput {
                print("\n\(check.name) (\(check.dtype)): largest difference in \(worst)")
                if check.outputsOverTolerance.count > 1 {
                    print("  over the tolerance: " + check.outputsOverTolerance.map { "\($0.output) \(format6($0.error))" }.joined(separator: ", "))
                }
            }
        }
        print("\n\(checks.count - failed.count) passed, \(failed.count) failed (\(elapsed))")
        if !failed.isEmpty || ncclFailure != nil { throw ExitCode(1) }
    }

    /// NCCL's collectives in a communicator of one rank, where each must leave its input as it was (sum and average
    /// of one value, a broadcast from itself, the one part of a scatter, the one input of a gather); nil when they do.
    static func checkNCCL(_ backend: CUDABackend) -> String? {
        do {
            let communicator = try NCCLCommunicator(uniqueID: NCCLCommunicator.uniqueID(), rank: 0, worldSize: 1, backend: backend)
            let values = (0..<1000).map { Float($0 % 97) / 7 - 3 }
            let tensor = try backend.tensor(values, shape: [1000], dtype: .float32)
            try communicator.allReduce(tensor, .sum)
            try communicator.allReduce(tensor, .average)
            try communicator.broadcast(tensor, root: 0)
            let scattered = try backend.zeros([1000], dtype: .float32), gathered = try backend.zeros([1000], dtype: .float32)
            try communicator.reduceScatter(tensor, into: scattered)
            try communicator.allGather(scattered, into: gathered)
            for (name, result) in [("all-reduce and broadcast", tensor), ("reduce-scatter and all-gather", gathered)] {
                guard try backend.floats(result) == values else { return "\(name) changed the values" }
            }
            return nil
        } catch {
            return "\(error)"
        }
    }
}

/// A compact scientific rendering such as 3.1e-06.
func format6(_ value: Double) -> String {
    guard value.isFinite, value > 0 else { return "\(value)" }
    var exponent = 0
    var mantissa = value
    while mantissa < 1 { mantissa *= 10; exponent -= 1 }
    while mantissa >= 10 { mantissa /= 10; exponent += 1 }
    if (mantissa * 10).rounded() >= 100 { mantissa /= 10; exponent += 1 }  // 9.96 would print as 10.0
    return "\(formatted(mantissa, digits: 1))e\(exponent < 0 ? "-" : "+")\(abs(exponent) < 10 ? "0" : "")\(abs(exponent))"
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
