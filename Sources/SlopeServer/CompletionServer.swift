#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import Hummingbird
import SLoPe
import SlopeData
import Synchronization

/// `slope serve`: OpenAI's completions API over a ``CompletionScheduler`` — `POST /v1/completions` and, with a chat
/// template, `POST /v1/chat/completions` (whole, or streamed as server-sent events), `GET /v1/models`, `GET /health`.
/// Requests are checked before they are queued and refused with OpenAI's error body and a 4xx status (503 when the
/// queue is full).
public struct CompletionServer: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// The name `/v1/models` lists and responses carry.
        public var modelName: String
        /// The most tokens one request may ask for.
        public var maxTokensLimit: Int
        /// Request bodies larger than this are refused (413).
        public var maxBodyBytes: Int

        public init(host: String = "127.0.0.1", port: Int = 8000, modelName: String, maxTokensLimit: Int = 4096, maxBodyBytes: Int = 4 << 20) {
            self.host = host
            self.port = port
            self.modelName = modelName
            self.maxTokensLimit = maxTokensLimit
            self.maxBodyBytes = maxBodyBytes
        }
    }

    public let scheduler: CompletionScheduler
    public let tokenizer: any TextTokenizer
    public let endOfText: Int32?
    public let configuration: Configuration
    /// The model's chat template; without one, chat requests are answered 404.
    public let chatTemplate: ChatTemplate?
    /// Where a chat reply ends beside the end of text: the template's `eos_token` (a chat model's end of turn, such as
    /// `<|im_end|>` or `<|eot_id|>`) where it is one token.
    let chatStopTokens: Set<Int32>
    let started = Int(Date().timeIntervalSince1970)

    public init(
        scheduler: CompletionScheduler, tokenizer: any TextTokenizer, endOfText: Int32?, chatTemplate: ChatTemplate? = nil, configuration: Configuration
    ) {
        self.scheduler = scheduler
        self.tokenizer = tokenizer
        self.endOfText = endOfText
        self.chatTemplate = chatTemplate
        self.configuration = configuration
        chatStopTokens = Set([endOfText, chatTemplate?.endOfTurn(tokenizer)].compactMap { $0 })
    }

    /// Serves until the task is cancelled (or, with `signals`, until SIGINT/SIGTERM); `onRunning` gets the port bound
    /// (useful with port 0).
    public func run(handlingSignals signals: Bool = false, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let application = Application(
            router: router(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "slope"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) })
        if signals { try await application.runService() } else { try await application.run() }
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("health") { _, _ in
            let statistics = scheduler.statistics
            return Self.json(.ok, [
                "status": "ok", "model": configuration.modelName, "completed": "\(statistics.completed)",
                "generated_tokens": "\(statistics.generatedTokens)",
            ])
        }
        router.get("v1/models") { _, _ in
            Self.json(.ok, ModelList(data: [.init(id: configuration.modelName, created: started)]))
        }
        router.post("v1/completions") { request, context in try await complete(request, context: context) }
        router.post("v1/chat/completions") { request, context in try await chat(request, context: context) }
        return router
    }

    /// Serves from a task of its own, returning once the port is bound (with port 0, the one the system chose) or
    /// throwing after `seconds`; cancel the task to stop. For a caller on a thread of its own: benchmarks and tests.
    public func start(waiting seconds: Int = 60) throws -> (port: Int, task: Task<Void, any Error>) {
        let port = Mutex(0)
        let task = Task { try await run { bound in port.withLock { $0 = bound } } }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(seconds)
        while port.withLock({ $0 }) == 0, clock.now < deadline { usleep(10_000) }
        guard case let bound = port.withLock({ $0 }), bound > 0 else {
            task.cancel()
            throw LoopbackClient.Failure(description: "the server did not start on \(configuration.host):\(configuration.port) within \(seconds) s")
        }
        return (bound, task)
    }

    /// Errors in requests, said as OpenAI says them.
    struct RequestError: Error {
        let message: String
        let param: String?
    }

    /// The request's body, or the response refusing it (413 over the size limit).
    private func body(of request: Request) async -> Result<Data, ResponseRefusal> {
        do {
            return .success(Data(buffer: try await request.body.collect(upTo: configuration.maxBodyBytes)))
        } catch {
            return .failure(ResponseRefusal(Self.error(.contentTooLarge, "the request body exceeds \(configuration.maxBodyBytes) bytes")))
        }
    }

    /// A response that ends a request early, as an error value.
    struct ResponseRefusal: Error {
        let response: Response
        init(_ response: Response) { self.response = response }
    }

    /// Queues a job, or the response refusing it (503 with Retry-After when the queue is full).
    private func submit(_ job: CompletionJob) -> Result<CompletionScheduler.Ticket, ResponseRefusal> {
        do {
            return .success(try scheduler.submit(job))
        } catch CompletionScheduler.Failure.queueFull(let waiting) {
            var response = Self.error(.serviceUnavailable, CompletionScheduler.Failure.queueFull(waiting: waiting).description, code: "overloaded")
            response.headers[.retryAfter] = "1"
            return .failure(ResponseRefusal(response))
        } catch {
            return .failure(ResponseRefusal(Self.error(.badRequest, "\(error)")))
        }
    }

    /// The whole text of a job (after `prefix`), its finish reason and the tokens generated; nil if a step failed.
    private func collect(_ ticket: CompletionScheduler.Ticket, _ text: CompletionText, prefix: String = "") async -> (String, CompletionEvent.FinishReason, Int)? {
        var output = prefix, reason = CompletionEvent.FinishReason.length, generated = 0
        do {
            try await relay(ticket, text) { delta, end, count in
                output += delta
                (reason, generated) = (end ?? reason, count)
            }
        } catch {
            return nil
        }
        return (output, reason, generated)
    }

    func complete(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let body: CompletionRequest
        switch await self.body(of: request) {
        case .failure(let refusal): return refusal.response
        case .success(let data):
            do { body = try JSONDecoder().decode(CompletionRequest.self, from: data) } catch let error as DecodingError {
                return Self.error(.badRequest, "the request body is not a completion request: \(Self.describe(error))")
            }
        }
        let job: CompletionJob, promptText: String
        do {
            (job, promptText) = try makeJob(body)
        } catch let error as RequestError {
            return Self.error(.badRequest, error.message, param: error.param)
        }
        let ticket: CompletionScheduler.Ticket
        switch submit(job) {
        case .failure(let refusal): return refusal.response
        case .success(let admitted): ticket = admitted
        }
        let id = "cmpl-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let echo = body.echo == true ? promptText : ""
        let text = CompletionText(tokenizer: tokenizer, prompt: job.prompt, stops: body.sampling.stop ?? [], stopTokens: job.stopTokens)
        let base = CompletionResponse(id: id, created: Int(Date().timeIntervalSince1970), model: configuration.modelName, choices: [])
        if body.sampling.stream == true {
            return stream(ticket, text: text, first: echo.isEmpty ? nil : Self.encoded(base.with(echo, nil, nil))) { delta, reason, generated in
                Self.encoded(base.with(delta, reason, reason == nil ? nil : Usage(promptTokens: job.prompt.count, completionTokens: generated)))
            }
        }
        guard let (output, reason, generated) = await collect(ticket, text, prefix: echo) else {
            return Self.error(.internalServerError, "generation failed", type: "server_error")
        }
        return Self.json(.ok, base.with(output, reason, Usage(promptTokens: job.prompt.count, completionTokens: generated)))
    }

    /// `POST /v1/chat/completions`: the conversation through the model's chat template (ending where the assistant's
    /// reply begins), encoded as the template wrote it (no tokens added), generated until the end of turn.
    func chat(_ request: Request, context: BasicRequestContext) async throws -> Response {
        guard let chatTemplate else {
            return Self.error(
                .notFound, "\(configuration.modelName) has no chat template (no chat_template.jinja or tokenizer_config.json chat_template "
                    + "beside its tokenizer): start slope serve with --chat-template FILE, or use /v1/completions", code: "chat_not_supported")
        }
        let body: ChatCompletionRequest
        let prompt: [Int32]
        do {
            switch await self.body(of: request) {
            case .failure(let refusal): return refusal.response
            case .success(let data): body = try ChatCompletionRequest(json: data)
            }
            let text: String
            do {
                text = try chatTemplate.render(messages: body.messages, addGenerationPrompt: true, variables: body.tools.map { ["tools": $0] } ?? [:])
            } catch let error as TemplateError {
                // The template's own raise_exception is its rule for what a conversation may be (roles alternating, …).
                throw RequestError(message: error.raisedByTemplate ? error.message : "the chat template cannot render these messages: \(error.message)", param: "messages")
            }
            do { prompt = try tokenizer.encodeWithoutAddedTokens(text) } catch { throw RequestError(message: "the conversation cannot be tokenized: \(error)", param: "messages") }
            guard !prompt.isEmpty else { throw RequestError(message: "the chat template rendered an empty prompt", param: "messages") }
        } catch let error as RequestError {
            return Self.error(.badRequest, error.message, param: error.param)
        }
        let job: CompletionJob
        do { job = try makeJob(prompt: prompt, body.sampling, stopTokens: chatStopTokens) } catch let error as RequestError {
            return Self.error(.badRequest, error.message, param: error.param)
        }
        let ticket: CompletionScheduler.Ticket
        switch submit(job) {
        case .failure(let refusal): return refusal.response
        case .success(let admitted): ticket = admitted
        }
        let (id, created) = ("chatcmpl-" + String(UInt64.random(in: 0...UInt64.max), radix: 16), Int(Date().timeIntervalSince1970))
        let text = CompletionText(tokenizer: tokenizer, prompt: job.prompt, stops: body.sampling.stop ?? [], stopTokens: job.stopTokens)
        if body.sampling.stream == true {
            @Sendable func chunk(_ delta: ChatCompletionChunk.Delta, _ reason: CompletionEvent.FinishReason?, _ usage: Usage?) -> String {
                Self.encoded(ChatCompletionChunk(id: id, created: created, model: configuration.modelName,
                                                 choices: [.init(delta: delta, finishReason: reason?.rawValue)], usage: usage))
            }
            return stream(ticket, text: text, first: chunk(.init(role: "assistant", content: ""), nil, nil)) { delta, reason, generated in
                chunk(.init(content: delta.isEmpty && reason != nil ? nil : delta), reason,
                      reason == nil ? nil : Usage(promptTokens: job.prompt.count, completionTokens: generated))
            }
        }
        guard let (output, reason, generated) = await collect(ticket, text) else {
            return Self.error(.internalServerError, "generation failed", type: "server_error")
        }
        return Self.json(.ok, ChatCompletionResponse(
            id: id, created: created, model: configuration.modelName, choices: [.init(message: .init(content: output), finishReason: reason.rawValue)],
            usage: Usage(promptTokens: job.prompt.count, completionTokens: generated)))
    }

    /// Hands a job's text to `piece` as its tokens arrive: each piece with the tokens generated so far, the last one
    /// with the finish reason — `stop` at a stop string (the job is then cancelled) or the job's own end.
    func relay(
        _ ticket: CompletionScheduler.Ticket, _ text: CompletionText,
        _ piece: (String, CompletionEvent.FinishReason?, Int) async throws -> Void
    ) async throws {
        var completion = text, generated = 0
        for try await event in ticket.events {
            switch event {
            case .token(let token):
                generated += 1
                let (delta, stopped) = completion.add(token)
                guard !stopped else {
                    ticket.cancel()
                    return try await piece(delta, .stop, generated)
                }
                try await piece(delta, nil, generated)
            case .finished(let reason):
                try await piece(completion.rest(), reason, generated)
            }
        }
    }

    /// Server-sent events: `first` if any, a chunk per piece of text (`chunk(delta, finish reason, tokens generated)`,
    /// encoded), the last with the finish reason, then `[DONE]`.
    func stream(
        _ ticket: CompletionScheduler.Ticket, text: CompletionText, first: String?,
        chunk: @escaping @Sendable (String, CompletionEvent.FinishReason?, Int) -> String
    ) -> Response {
        let body = ResponseBody { writer in
            defer { ticket.cancel() }  // a client gone mid-stream frees its slot at the next step
            func send(_ encoded: String) async throws { try await writer.write(ByteBuffer(string: "data: " + encoded + "\n\n")) }
            if let first { try await send(first) }
            do {
                try await relay(ticket, text) { delta, reason, generated in
                    if reason != nil || !delta.isEmpty { try await send(chunk(delta, reason, generated)) }
                }
            } catch let error where !(error is CancellationError) {
                let failure = ErrorBody(error: .init(message: "generation failed: \(error)", type: "server_error"))
                try await writer.write(ByteBuffer(string: "data: " + Self.encoded(failure) + "\n\n"))
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// The scheduler's job for a completion request, and the prompt's text (for `echo`), or what is wrong with it.
    func makeJob(_ body: CompletionRequest) throws -> (CompletionJob, String) {
        let prompt: [Int32], promptText: String
        switch body.prompt {
        case .text(let text):
            do { prompt = try tokenizer.encode(text) } catch { throw RequestError(message: "the prompt cannot be tokenized: \(error)", param: "prompt") }
            promptText = text
        case .tokens(let tokens):
            guard tokens.allSatisfy({ (0..<Int32(scheduler.vocabularySize)).contains($0) }) else {
                throw RequestError(message: "a prompt token id is outside the vocabulary (0 ..< \(scheduler.vocabularySize))", param: "prompt")
            }
            prompt = tokens
            promptText = tokenizer.decode(tokens)
        }
        return (try makeJob(prompt: prompt, body.sampling, stopTokens: Set([endOfText].compactMap { $0 })), promptText)
    }

    /// The scheduler's job for a prompt and the request's sampling, or what is wrong with them.
    func makeJob(prompt: [Int32], _ body: SamplingParameters, stopTokens: Set<Int32>) throws -> CompletionJob {
        func fail(_ message: String, _ param: String) -> RequestError { RequestError(message: message, param: param) }
        if let model = body.model, model != configuration.modelName {
            throw fail("this server serves \(configuration.modelName), not \(model)", "model")
        }
        guard (body.n ?? 1) == 1 else { throw fail("n must be 1 (send several requests; they are batched together)", "n") }
        let maxTokens = body.maxTokens ?? 16
        guard (1...configuration.maxTokensLimit).contains(maxTokens) else {
            throw fail("max_tokens must be in 1 … \(configuration.maxTokensLimit), not \(maxTokens)", "max_tokens")
        }
        let temperature = body.temperature ?? 1
        guard temperature.isFinite, temperature >= 0 else { throw fail("temperature must be a finite number ≥ 0", "temperature") }
        guard body.topP.map({ $0 > 0 && $0 <= 1 }) ?? true else { throw fail("top_p must be in (0, 1]", "top_p") }
        guard body.topK.map({ $0 >= 1 }) ?? true else { throw fail("top_k must be at least 1", "top_k") }
        guard (body.stop ?? []).count <= 4 else { throw fail("at most 4 stop strings", "stop") }
        guard !prompt.isEmpty else { throw fail("the prompt is empty", "prompt") }
        let context = scheduler.contextLength
        guard prompt.count + maxTokens - 1 <= context else {
            throw fail(
                "the context holds \(context) tokens, but the prompt has \(prompt.count) and max_tokens asks for \(maxTokens); "
                    + "shorten the prompt or ask for at most \(max(context - prompt.count + 1, 0)) tokens", "max_tokens")
        }
        let sampler = try TokenSampler(
            temperature: temperature, topK: body.topK, topP: body.topP, seed: body.seed ?? UInt64.random(in: 0...UInt64.max))
        return CompletionJob(prompt: prompt, maxTokens: maxTokens, sampler: sampler, stopTokens: stopTokens)
    }

    // MARK: Responses

    static func encoded(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: encoded(value))))
    }

    static func error(
        _ status: HTTPResponse.Status, _ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil
    ) -> Response {
        json(status, ErrorBody(error: .init(message: message, type: type, param: param, code: code)))
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context): return context.codingPath.isEmpty ? "not JSON" : "\(path(context)): \(context.debugDescription)"
        case .keyNotFound(let key, _): return "`\(key.stringValue)` is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "\(path(context)) has the wrong type"
        @unknown default: return "\(error)"
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        "`" + context.codingPath.map(\.stringValue).joined(separator: ".") + "`"
    }
}
