import ArgumentParser
import FoundationEssentials
import SLoPe
import SlopeData

/// Weights made elsewhere: a transformers model folder, or a slope checkpoint used as a starting point.
struct PretrainedModel {
    let model: TransformerModel
    /// The `--tokenizer` value that reads the model's own tokenizer files, when it has some slope reads.
    let tokenizer: String?
    /// Why the folder's tokenizer files cannot be used, when it has some.
    let tokenizerProblem: String?
    /// "OPT from hf/opt-125m" and the like.
    let description: String

    /// A transformers folder imported in `dtype` (default: as stored, float16 as bfloat16), or a slope checkpoint's
    /// dense model (cast to `dtype` when given).
    static func load(_ path: String, dtype: DType?, backend: any Backend) throws -> PretrainedModel {
        if HuggingFaceImport.isModelFolder(path) {
            let stored = try HuggingFaceImport.storedDType(folder: path)
            let type = dtype ?? (stored == .float16 ? .bfloat16 : stored)
            let (model, config) = try HuggingFaceImport.load(folder: path, dtype: type, backend: backend)
            let (tokenizer, problem) = tokenizerFiles(in: path)
            return PretrainedModel(
                model: model, tokenizer: tokenizer, tokenizerProblem: problem,
                description: "\(config.architecture.rawValue) model from \(path) (stored \(stored))")
        }
        var isDirectory = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory {
            throw ValidationError("\(path) is a folder without a config.json: give a transformers model folder or a slope checkpoint file")
        }
        let file = try SafeTensors.read(path)
        let (model, state) = try Checkpoint.loadModel(file, backend: backend)
        guard model.sparseWeights.isEmpty else {
            throw ValidationError(
                "\(path) holds a SLoPe (sparse) model; to start from it, write it dense with `slope export \(path) --out FOLDER` and start from FOLDER")
        }
        var result = model
        if let dtype, dtype != model.dtype {
            result = try TransformerModel(configuration: model.configuration, dtype: dtype, backend: backend, seed: 0)
            for (source, target) in zip(model.parameters, result.parameters) { try backend.copy(source.value, into: target.value) }
        }
        let tokenizer = DataOptions.fromNotes(state.notes).tokenizer
        return PretrainedModel(model: result, tokenizer: tokenizer, tokenizerProblem: nil, description: "slope checkpoint \(path) (step \(state.step))")
    }

    /// The tokenizer files of a transformers folder as a `--tokenizer` value, or why they cannot be used.
    static func tokenizerFiles(in folder: String) -> (tokenizer: String?, problem: String?) {
        let json = folder + "/tokenizer.json", vocabulary = folder + "/vocab.json", merges = folder + "/merges.txt"
        let candidates = [json, vocabulary + "," + merges].filter { $0.split(separator: ",").allSatisfy { FileManager.default.fileExists(atPath: String($0)) } }
        var problem: String?
        for candidate in candidates {
            var options = DataOptions()
            options.tokenizer = candidate
            do {
                _ = try options.makeTokenizer()
                return (candidate, nil)
            } catch {
                problem = problem ?? "\(candidate): \(error)"
            }
        }
        return (nil, problem ?? "no tokenizer.json or vocab.json + merges.txt in \(folder)")
    }
}

/// `slope import`: a transformers model folder written as a slope checkpoint.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Convert a Hugging Face model folder (GPT-2, OPT or LLaMA family, safetensors) into a slope checkpoint.",
        discussion: """
            The checkpoint is dense, at step 0, and remembers the folder's tokenizer when slope reads it. `slope eval`, \
            `generate` and `pretrain --init-from` also take the folder itself.
            """)

    @Argument(help: "A folder with config.json and model.safetensors (or model.safetensors.index.json and its shards).")
    var folder: String

    @Option(help: "The checkpoint to write (a .safetensors file).")
    var out: String

    @Option(help: "Element type of the checkpoint's weights (default: as stored; float16 becomes bfloat16).")
    var dtype: DType?

    @Flag(help: "Replace --out if it exists.")
    var force = false

    func validate() throws {
        guard out.hasSuffix(".safetensors") else { throw ValidationError("--out must name a .safetensors file, not \(out)") }
        if let dtype, ![.float32, .bfloat16, .float16].contains(dtype) {
            throw ValidationError("--dtype must be float32, bfloat16 or float16, not \(dtype)")
        }
    }

    func run() throws {
        guard HuggingFaceImport.isModelFolder(folder) else {
            throw ValidationError("\(folder) is not a transformers model folder (no config.json there)")
        }
        if !force, FileManager.default.fileExists(atPath: out) {
            throw ValidationError("\(out) exists; choose another --out or pass --force to replace it")
        }
        let source = try PretrainedModel.load(folder, dtype: dtype, backend: CPUBackend())
        var notes = ["imported_from": folder, "data": "none"]
        notes["tokenizer"] = source.tokenizer ?? "none"
        if let tokenizer = source.tokenizer {  // absolute paths: the checkpoint may be used from elsewhere
            notes["tokenizer"] = tokenizer.split(separator: ",").map { $0.hasPrefix("/") ? String($0) : FileManager.default.currentDirectoryPath + "/" + $0 }
                .joined(separator: ",")
        }
        let directory = URL(fileURLWithPath: out).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Checkpoint.save(model: source.model, notes: notes, to: out)
        let c = source.model.configuration
        print("wrote \(out): \(source.description), \(c.family) family, \(formatCount(c.parameterCount)) parameters, \(source.model.dtype)")
        if let tokenizer = notes["tokenizer"], tokenizer != "none" {
            print("tokenizer    \(tokenizer)")
        } else {
            print("tokenizer    none slope reads (\(source.tokenizerProblem ?? "none found")); give eval and pretrain text as a .tokens shard")
        }
        print("Next: slope generate \(out) --prompt \"…\"   ·   slope pretrain --init-from \(out) --data TEXT")
    }
}
