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
    /// A chat request's JSON (what `slope serve` reads from any client), rendered through a template using most of
    /// the subset; and a chat template's source (what an operator gives `--chat-template`), rendered.
    case chatRequest = "chat-request", chatTemplate = "chat-template"

    /// The fixed template the chat-request target renders every parsed request through (made per input: LeakSanitizer
    /// reports what a `static let` holds at exit as leaked).
    static func requestTemplate() throws -> ChatTemplate {
        try ChatTemplate("""
        {%- set ns = namespace(n=0) -%}{{ bos_token }}{% for m in messages %}{% set ns.n = ns.n + 1 %}<{{ m.role | string | upper }}>
        {%- if m.content is string %}{{ m.content | trim }}{% elif m.content is iterable %}{% for p in m.content %}{{ p.text | default('') }}{% endfor %}{% endif %}
        {%- if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}{{ eos_token }}{% endfor %}{{ tools | tojson if tools is defined }}{{ ns.n }}
        """, specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])
    }

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
        case .chatRequest:
            guard let value = try? TemplateValue(json: bytes) else { return }
            // What is read writes back as JSON that reads as the same value.
            if let written = try? value.json(indent: nil) {
                guard let again = try? TemplateValue(json: Array(written.utf8)) else { preconditionFailure("tojson wrote unreadable JSON: \(written)") }
                precondition(TemplateValue.equal(value, again), "a JSON round trip changed the value")
            }
            guard case .dictionary(let fields) = value, case .list(let messages)? = fields["messages"] else { return }
            _ = try? Self.requestTemplate().render(messages: messages, addGenerationPrompt: true, variables: fields["tools"].map { ["tools": $0] } ?? [:])
        case .chatTemplate:
            guard let template = try? ChatTemplate(String(decoding: bytes, as: UTF8.self), specialTokens: ["eos_token": "</s>"]) else { return }
            let messages: [TemplateValue] = [
                .dictionary(["role": "system", "content": "Be brief."]), .dictionary(["role": "user", "content": "Hi ünï"]),
                .dictionary(["role": "assistant", "content": .list([.dictionary(["type": "text", "text": "Hello"])])]),
            ]
            _ = try? template.render(messages: messages, addGenerationPrompt: true)
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
