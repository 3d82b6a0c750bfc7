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

    /// The notes of an imported model's checkpoint state: where it came from, no training data of its own, and its
    /// tokenizer with absolute paths (the checkpoint may be used from another folder).
    func importNotes(from path: String) -> [String: String] {
        let tokenizer = self.tokenizer.map { spec in
            spec.split(separator: ",").map { $0.hasPrefix("/") ? String($0) : FileManager.default.currentDirectoryPath + "/" + $0 }
                .joined(separator: ",")
        }
        return ["imported_from": path, "data": "none", "tokenizer": tokenizer ?? MissingTokenizer.name]
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
