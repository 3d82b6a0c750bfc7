import FoundationEssentials
import SlopeData

/// A chat completion request: the conversation (and any tools) as the chat template will see them, in the order the
/// client wrote their keys, and the sampling fields completions take.
struct ChatCompletionRequest: Sendable {
    var messages: [TemplateValue]
    /// `tools`, passed to the template as it came (templates that know tools render them; others ignore them).
    var tools: TemplateValue?
    var sampling: SamplingParameters

    /// Reads the body; errors say which field is wrong and how.
    init(json data: Data) throws {
        let value: TemplateValue
        do { value = try TemplateValue(json: data) } catch let error as TemplateError {
            throw CompletionServer.RequestError(message: "the request body is not JSON: \(error.message)", param: nil)
        }
        guard case .dictionary(let fields) = value else {
            throw CompletionServer.RequestError(message: "the request body must be a JSON object", param: nil)
        }
        guard case .list(let messages)? = fields["messages"], !messages.isEmpty else {
            throw CompletionServer.RequestError(message: "`messages` must be a non-empty list of {\"role\", \"content\"} objects", param: "messages")
        }
        for (index, message) in messages.enumerated() {
            guard case .dictionary(let parts) = message, case .string? = parts["role"] else {
                throw CompletionServer.RequestError(message: "messages[\(index)] needs a string `role`", param: "messages")
            }
            switch parts["content"] {
            case .string?, .list?, .none?, nil: break
            default: throw CompletionServer.RequestError(message: "messages[\(index)].content must be a string, a list of parts or null", param: "messages")
            }
        }
        self.messages = messages
        tools = fields["tools"]
        do {
            sampling = try JSONDecoder().decode(SamplingParameters.self, from: data)
        } catch let error as DecodingError {
            throw CompletionServer.RequestError(message: "the request body is not a chat completion request: \(CompletionServer.describe(error))", param: nil)
        }
    }
}

/// A whole chat completion (`object: chat.completion`).
struct ChatCompletionResponse: Encodable, Sendable {
    struct Message: Encodable, Sendable {
        var role = "assistant"
        var content: String
    }
    struct Choice: Encodable, Sendable {
        var index = 0
        var message: Message
        var finishReason: String
        enum CodingKeys: String, CodingKey { case index, message, logprobs, finishReason = "finish_reason" }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(message, forKey: .message)
            try container.encodeNil(forKey: .logprobs)
            try container.encode(finishReason, forKey: .finishReason)
        }
    }
    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
}

/// One chunk of a streamed chat completion (`object: chat.completion.chunk`): the first carries the role, the
/// last the finish reason (and usage).
struct ChatCompletionChunk: Encodable, Sendable {
    struct Delta: Encodable, Sendable {
        var role: String?
        var content: String?
    }
    struct Choice: Encodable, Sendable {
        var index = 0
        var delta: Delta
        var finishReason: String?
        enum CodingKeys: String, CodingKey { case index, delta, logprobs, finishReason = "finish_reason" }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(delta, forKey: .delta)
            try container.encodeNil(forKey: .logprobs)
            try container.encode(finishReason, forKey: .finishReason)  // null until the last chunk
        }
    }
    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?
}
