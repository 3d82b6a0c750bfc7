import ArgumentParser
import FoundationEssentials
import SLoPe

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
        let notes = source.importNotes(from: folder)
        let directory = URL(fileURLWithPath: out).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Checkpoint.save(model: source.model, notes: notes, to: out)
        let c = source.model.configuration
        print("wrote \(out): \(source.description), \(c.family) family, \(formatCount(c.parameterCount)) parameters, \(source.model.dtype)")
        if let tokenizer = notes["tokenizer"], tokenizer != MissingTokenizer.name {
            print("tokenizer    \(tokenizer)")
        } else {
            print("tokenizer    none slope reads (\(source.tokenizerProblem ?? "none found")); give eval and pretrain text as a .tokens shard")
        }
        print("Next: slope generate \(out) --prompt \"…\"   ·   slope pretrain --init-from \(out) --data TEXT")
    }
}
