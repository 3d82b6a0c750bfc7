import FoundationEssentials

/// Reads a transformers model folder (config.json and model.safetensors, or shards listed in
/// model.safetensors.index.json) as a dense slope ``TransformerModel``: GPT-2, OPT and LLaMA-family models, weights
/// stored in any float dtype. OPT and LLaMA name their tensors as slope does; GPT-2's fused, transposed (Conv1D)
/// projections are split and transposed, and its position table moved to OPT's offset of 2. Every tensor of the
/// model must be in the files and every tensor of the files must be used (a few known buffers aside).
public enum HuggingFaceImport {
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case noWeights(folder: String, found: [String])
        case badIndex(path: String, reason: String)
        case missingTensors(folder: String, names: [String])
        case unexpectedTensors(folder: String, names: [String])
        case badShape(folder: String, name: String, expected: [Int], found: [Int])
        case adapterBeside(folder: String)

        public var description: String {
            func list(_ names: [String]) -> String { names.prefix(4).joined(separator: ", ") + (names.count > 4 ? ", … (\(names.count))" : "") }
            switch self {
            case let .noWeights(folder, found):
                return "\(folder) has no model.safetensors or model.safetensors.index.json"
                    + (found.contains { $0.hasSuffix(".bin") || $0.hasSuffix(".pt") }
                        ? " (only PyTorch pickles, which slope does not read: save the model with safetensors, e.g. "
                            + "model.save_pretrained(folder, safe_serialization=True))" : "")
            case let .badIndex(path, reason): return "cannot use \(path): \(reason)"
            case let .missingTensors(folder, names): return "\(folder) lacks tensors the model needs: \(list(names))"
            case let .unexpectedTensors(folder, names):
                return "\(folder) has tensors this model does not use: \(list(names)); it is a variant slope does not import"
            case let .badShape(folder, name, expected, found): return "\(folder): tensor '\(name)' is \(found), the model needs \(expected)"
            case let .adapterBeside(folder):
                return "\(folder) holds a PEFT adapter (adapter_config.json) that transformers applies to its weights and slope does not "
                    + "read; merge it first (PeftModel.merge_and_unload()), or for a slope export write it with --adapter fold"
            }
        }
    }

    /// Whether `path` is a folder with a config.json (a transformers model rather than a slope checkpoint).
    public static func isModelFolder(_ path: String) -> Bool {
        var isDirectory = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory
            && FileManager.default.fileExists(atPath: path + "/config.json")
    }

    /// The model of `folder` in `dtype` (default: float32 on the CPU, the stored type elsewhere is the caller's
    /// choice) on `backend`.
    public static func load(folder: String, dtype: DType, backend: any Backend) throws -> (TransformerModel, HuggingFaceConfig) {
        let config = try HuggingFaceConfig.read(folder: folder)
        guard !FileManager.default.fileExists(atPath: folder + "/adapter_config.json") else { throw Failure.adapterBeside(folder: folder) }
        let files = try tensorFiles(folder: folder)
        let model = try TransformerModel(configuration: config.configuration, dtype: dtype, backend: backend, seed: 0)
        var used = Set<String>()
        var missing: [String] = []
        let host = CPUBackend()
        /// The stored name of `name` (OPT checkpoints saved from OPTModel drop the leading "model.").
        func stored(_ name: String) -> String? {
            [name, name.hasPrefix("model.") ? String(name.dropFirst(6)) : nil].compactMap { $0 }.first { files[$0] != nil }
        }
        func floats(_ name: String) throws -> (values: [Float], shape: [Int]) {
            let entry = try files[name]!.entry(name)
            return (try host.floats(SafeTensors.upload(entry, backend: host)), entry.shape)
        }
        func fill(_ parameter: Parameter, _ values: [Float], from name: String, shape: [Int]) throws {
            guard shape == parameter.value.shape else {
                throw Failure.badShape(folder: folder, name: name, expected: parameter.value.shape, found: shape)
            }
            try backend.copy(backend.tensor(values, shape: shape, dtype: parameter.value.dtype), into: parameter.value)
        }

        switch config.architecture {
        case .opt, .llama:
            for parameter in model.parameters {
                guard let name = stored(parameter.name) else { missing.append(parameter.name); continue }
                let entry = try files[name]!.entry(name)
                guard entry.shape == parameter.value.shape else {
                    throw Failure.badShape(folder: folder, name: name, expected: parameter.value.shape, found: entry.shape)
                }
                try files[name]!.load(name, into: parameter.value, backend: backend)
                used.insert(name)
            }
        case .gpt2:
            let prefix = files["transformer.wte.weight"] != nil ? "transformer." : ""
            let c = config.configuration
            for parameter in model.parameters {
                guard let (source, convert) = gpt2Source(of: parameter.name, prefix: prefix, hidden: c.hiddenSize) else {
                    missing.append(parameter.name)
                    continue
                }
                guard files[source] != nil else { missing.append(source); continue }
                let (values, shape) = try floats(source)
                let (converted, convertedShape) = convert(values, shape)
                try fill(parameter, converted, from: source, shape: convertedShape)
                used.insert(source)
            }
        }
        guard missing.isEmpty else { throw Failure.missingTensors(folder: folder, names: missing) }
        let ignorable = { (name: String) -> Bool in
            name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias") || name.hasSuffix("rotary_emb.inv_freq")
                || (name == "lm_head.weight" && config.configuration.tiedEmbeddings)
        }
        let unexpected = files.keys.filter { !used.contains($0) && !ignorable($0) }.sorted()
        guard unexpected.isEmpty else { throw Failure.unexpectedTensors(folder: folder, names: unexpected) }
        return (model, config)
    }

    /// The element type the folder's weights are stored in (that of its token embedding, or of any tensor).
    public static func storedDType(folder: String) throws -> DType {
        let files = try tensorFiles(folder: folder)
        let name = files.keys.first { $0.hasSuffix("embed_tokens.weight") || $0.hasSuffix("wte.weight") } ?? files.keys.sorted().first
        guard let name, let entry = files[name]?.tensors[name] else { throw Failure.noWeights(folder: folder, found: []) }
        return entry.dtype
    }

    /// Every tensor name of the folder and the file holding it.
    static func tensorFiles(folder: String) throws -> [String: SafeTensors.File] {
        let single = folder + "/model.safetensors", indexPath = folder + "/model.safetensors.index.json"
        if FileManager.default.fileExists(atPath: single) {
            let file = try SafeTensors.read(single)
            return Dictionary(uniqueKeysWithValues: file.tensors.keys.map { ($0, file) })
        }
        guard FileManager.default.fileExists(atPath: indexPath) else {
            throw Failure.noWeights(folder: folder, found: (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
        }
        struct Index: Decodable { let weight_map: [String: String] }
        let index: Index
        do { index = try JSONDecoder().decode(Index.self, from: Data(contentsOf: URL(fileURLWithPath: indexPath))) } catch {
            throw Failure.badIndex(path: indexPath, reason: "\(error)")
        }
        var shards: [String: SafeTensors.File] = [:]
        var result: [String: SafeTensors.File] = [:]
        for (name, shard) in index.weight_map {
            guard !shard.contains("/"), shard.hasSuffix(".safetensors") else {
                throw Failure.badIndex(path: indexPath, reason: "shard '\(shard)' is not a .safetensors file in the folder")
            }
            let file = try shards[shard] ?? SafeTensors.read(folder + "/" + shard)
            shards[shard] = file
            guard file.tensors[name] != nil else {
                throw Failure.badIndex(path: indexPath, reason: "it places '\(name)' in \(shard), which does not hold it")
            }
            result[name] = file
        }
        return result
    }

    /// Where slope's tensor `name` comes from in a GPT-2 checkpoint, and how it is converted: Conv1D weights are
    /// stored [in, out] (transposed), q, k and v fused in c_attn along the output, positions without OPT's offset.
    static func gpt2Source(of name: String, prefix: String, hidden: Int) -> (String, ([Float], [Int]) -> ([Float], [Int]))? {
        let identity: ([Float], [Int]) -> ([Float], [Int]) = { ($0, $1) }
        let decoder = "model.decoder."
        guard name.hasPrefix(decoder) else { return nil }
        let rest = String(name.dropFirst(decoder.count))
        switch rest {
        case "embed_tokens.weight": return (prefix + "wte.weight", identity)
        case "embed_positions.weight":
            // slope's (and OPT's) position ids start at 2: two unused rows first.
            return (prefix + "wpe.weight", { values, shape in
                shape.count == 2 ? (Array(repeating: 0, count: 2 * shape[1]) + values, [shape[0] + 2, shape[1]]) : (values, shape)
            })
        case "final_layer_norm.weight", "final_layer_norm.bias": return (prefix + "ln_f." + rest.split(separator: ".").last!, identity)
        default: break
        }
        let parts = rest.split(separator: ".").map(String.init)  // layers, i, module…, weight|bias
        guard parts.count >= 4, parts[0] == "layers", let kind = parts.last else { return nil }
        let block = "\(prefix)h.\(parts[1])."
        let module = parts[2..<(parts.count - 1)].joined(separator: ".")
        let isWeight = kind == "weight"
        let transpose: ([Float], [Int]) -> ([Float], [Int]) = { values, shape in
            guard isWeight, shape.count == 2 else { return (values, shape) }
            let (rows, columns) = (shape[0], shape[1])
            var out = [Float](repeating: 0, count: values.count)
            for r in 0..<rows { for c in 0..<columns { out[c * rows + r] = values[r * columns + c] } }
            return (out, [columns, rows])
        }
        switch module {
        case "self_attn_layer_norm": return (block + "ln_1." + kind, identity)
        case "final_layer_norm": return (block + "ln_2." + kind, identity)
        case "self_attn.out_proj": return (block + "attn.c_proj." + kind, transpose)
        case "fc1": return (block + "mlp.c_fc." + kind, transpose)
        case "fc2": return (block + "mlp.c_proj." + kind, transpose)
        case "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj":
            let part = ["self_attn.q_proj": 0, "self_attn.k_proj": 1, "self_attn.v_proj": 2][module]!
            return (block + "attn.c_attn." + kind, { values, shape in
                let (full, fullShape) = transpose(values, shape)  // weight: [3·hidden, hidden]; bias: [3·hidden]
                let width = fullShape.count == 2 ? fullShape[1] : 1
                // A c_attn of another shape is passed on whole, for the shape check to refuse.
                guard fullShape.first == 3 * hidden, fullShape.count <= 2 else { return (full, fullShape) }
                let slice = Array(full[(part * hidden * width)..<((part + 1) * hidden * width)])
                return (slice, fullShape.count == 2 ? [hidden, width] : [hidden])
            })
        default: return nil
        }
    }
}
