#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import SLoPe
import SlopeData

/// One parser of untrusted bytes, fed whatever the fuzzer makes. A thrown error is the right answer to bad input;
/// a crash (a trap, an allocation failure, a sanitizer report) or a broken invariant is a finding.
enum FuzzTarget: String, CaseIterable {
    case safetensors, tokens, tokenizerJSON = "tokenizer-json", vocabMerges = "vocab-merges", modelJSON = "model-json"
    case checkpointState = "checkpoint-state"

    /// The target named by `SLOPE_FUZZ_TARGET` (libFuzzer keeps the command line for itself).
    static func fromEnvironment() -> FuzzTarget? {
        processEnvironmentValue("SLOPE_FUZZ_TARGET").flatMap(FuzzTarget.init(rawValue:))
    }

    func run(_ bytes: [UInt8]) {
        switch self {
        case .safetensors:
            guard let file = try? SafeTensors.parse(fileBytes: bytes) else { return }
            for entry in file.tensors.values {  // every accepted entry lies inside the file and matches its shape
                precondition(entry.byteCount == (CheckedSize.product(entry.shape + [entry.dtype.byteSize]) ?? -1))
                precondition(entry.byteCount <= bytes.count)
            }
        case .tokens:
            guard let tokens = try? TokenShard.decode(bytes) else { return }
            precondition(tokens.count * 2 <= bytes.count)
        case .tokenizerJSON:
            let text = "Hello, world! 1234 ünïcödé<|begin_of_text|> it's  \n\n x<|endoftext|>[SEP] 日本\u{FEFF}"
            if let wordPiece = try? WordPieceTokenizer(tokenizerJSONData: Data(bytes)) {
                precondition(wordPiece.vocabularySize <= 4 * bytes.count + 2048)
                _ = wordPiece.decode((try? wordPiece.encode(text)) ?? [])
            }
            guard let tokenizer = try? BPETokenizer(tokenizerJSONData: Data(bytes)) else { return }
            precondition(tokenizer.vocabularySize <= 4 * bytes.count + 2048)
            _ = try? tokenizer.encode(text)
        case .vocabMerges:
            // The vocabulary JSON and merges.txt, separated by the first zero byte.
            let split = bytes.firstIndex(of: 0) ?? bytes.count
            let merges = split < bytes.count ? Array(bytes[(split + 1)...]) : []
            guard let tokenizer = try? BPETokenizer(vocabularyJSON: Data(bytes[..<split]), merges: Data(merges)) else { return }
            _ = try? tokenizer.encode("the quick brown fox")
        case .modelJSON:
            guard let configuration = try? ModelConfiguration.decode(Data(bytes)) else { return }
            precondition(configuration.checkedParameterCount != nil)
        case .checkpointState:
            guard let state = try? Checkpoint.state(json: String(decoding: bytes, as: UTF8.self)) else { return }
            precondition(state.model.checkedParameterCount != nil && state.options.steps >= 1)
        }
    }
}

/// An environment variable (swift-foundation's ProcessInfo is not in FoundationEssentials).
func processEnvironmentValue(_ name: String) -> String? {
    #if canImport(Glibc)
    return getenv(name).map { String(cString: $0) }
    #else
    return nil
    #endif
}
