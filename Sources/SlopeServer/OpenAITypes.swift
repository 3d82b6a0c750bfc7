/// What completions and chat completions share: the model, limits and sampling (field names as OpenAI spells them).
struct SamplingParameters: Decodable, Sendable {
    var model: String?
    var maxTokens: Int?
    var temperature: Double?
    var topP: Double?
    /// Not OpenAI's, but what vLLM and llama.cpp accept too.
    var topK: Int?
    var stream: Bool?
    var stop: [String]?
    var seed: UInt64?
    var n: Int?

    enum CodingKeys: String, CodingKey {
        case model, temperature, stream, stop, seed, n
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", topP = "top_p", topK = "top_k"
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try container.decodeIfPresent(String.self, forKey: .model)
        // Chat's newer name for the same limit.
        maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens) ?? container.decodeIfPresent(Int.self, forKey: .maxCompletionTokens)
        temperature = try container.decodeIfPresent(Double.self, forKey: .temperature)
        topP = try container.decodeIfPresent(Double.self, forKey: .topP)
        topK = try container.decodeIfPresent(Int.self, forKey: .topK)
        stream = try container.decodeIfPresent(Bool.self, forKey: .stream)
        if let one = try? container.decode(String.self, forKey: .stop) {
            stop = [one]
        } else {
            stop = try container.decodeIfPresent([String].self, forKey: .stop)
        }
        seed = try container.decodeIfPresent(UInt64.self, forKey: .seed)
        n = try container.decodeIfPresent(Int.self, forKey: .n)
    }
}

/// The parts of OpenAI's completions API that `slope serve` speaks: a prompt and `echo` beside the sampling.
struct CompletionRequest: Decodable, Sendable {
    var prompt: Prompt
    var echo: Bool?
    var sampling: SamplingParameters

    /// A text, a list holding one text, or token ids.
    enum Prompt: Sendable, Equatable {
        case text(String)
        case tokens([Int32])
    }

    enum CodingKeys: String, CodingKey { case prompt, echo }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try? container.decode(String.self, forKey: .prompt) {
            prompt = .text(text)
        } else if let texts = try? container.decode([String].self, forKey: .prompt) {
            guard texts.count == 1 else {
                throw DecodingError.dataCorruptedError(
                    forKey: .prompt, in: container, debugDescription: "one prompt per request (send several requests; they are batched)")
            }
            prompt = .text(texts[0])
        } else if let tokens = try? container.decode([Int32].self, forKey: .prompt) {
            prompt = .tokens(tokens)
        } else {
            throw DecodingError.dataCorruptedError(forKey: .prompt, in: container, debugDescription: "a string or a list of token ids")
        }
        echo = try container.decodeIfPresent(Bool.self, forKey: .echo)
        sampling = try SamplingParameters(from: decoder)
    }
}

struct CompletionChoice: Encodable, Sendable {
    var text: String
    var index = 0
    var logprobs: String? = nil
    var finishReason: String?

    enum CodingKeys: String, CodingKey {
        case text, index, logprobs
        case finishReason = "finish_reason"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(text, forKey: .text)
        try container.encode(index, forKey: .index)
        try container.encodeNil(forKey: .logprobs)
        try container.encode(finishReason, forKey: .finishReason)  // null while streaming
    }
}

struct Usage: Encodable, Sendable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int { promptTokens + completionTokens }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(promptTokens, forKey: .promptTokens)
        try container.encode(completionTokens, forKey: .completionTokens)
        try container.encode(totalTokens, forKey: .totalTokens)
    }
}

/// A whole completion, or one chunk of a streamed one (`usage` on the last chunk only).
struct CompletionResponse: Encodable, Sendable {
    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [CompletionChoice]
    var usage: Usage?

    /// This response with one choice of `text` (and its finish reason, null while streaming) and `usage`.
    func with(_ text: String, _ reason: CompletionEvent.FinishReason?, _ usage: Usage?) -> CompletionResponse {
        var response = self
        response.choices = [CompletionChoice(text: text, finishReason: reason?.rawValue)]
        response.usage = usage
        return response
    }
}

struct ModelList: Encodable, Sendable {
    struct Model: Encodable, Sendable {
        var id: String
        var object = "model"
        var created: Int
        var ownedBy = "slope"
        enum CodingKeys: String, CodingKey {
            case id, object, created
            case ownedBy = "owned_by"
        }
    }
    var object = "list"
    var data: [Model]
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
struct ErrorBody: Encodable, Sendable {
    struct Detail: Encodable, Sendable {
        var message: String
        var type: String
        var param: String?
        var code: String?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(message, forKey: .message)
            try container.encode(type, forKey: .type)
            try container.encode(param, forKey: .param)
            try container.encode(code, forKey: .code)
        }
        enum CodingKeys: String, CodingKey { case message, type, param, code }
    }
    var error: Detail
}
