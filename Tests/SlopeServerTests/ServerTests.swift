import Dispatch
import Foundation
import SLoPe
import SlopeData
@testable import SlopeServer
import Synchronization
import XCTest

extension LoopbackClient.Response {
    func json() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
    }
}

/// `slope serve`'s parts: the text of a completion as tokens arrive, the continuous-batching scheduler, and the HTTP
/// server over loopback with many concurrent streaming clients.
final class ServerTests: XCTestCase {
    static let configuration = ModelConfiguration(
        family: .gpt, vocabularySize: 257, contextLength: 64, layers: 2, hiddenSize: 32, heads: 4, intermediateSize: 64)

    /// A small SLoPe model with merged adapters, as `slope serve` runs one.
    static func model(_ configuration: ModelConfiguration = configuration) throws -> TransformerModel {
        let model = try TransformerModel(configuration: configuration, backend: CPUBackend(), seed: 11)
        try model.convertToSLoPe()
        _ = try model.attachAdapters(rank: 4, seed: 2)
        try model.mergeForInference()
        return model
    }

    // MARK: Text

    func testCompletionTextHoldsBackPartialStopsAndCharacters() throws {
        let tokenizer = ByteTokenizer()
        let prompt = try tokenizer.encode("Q: ")
        var text = CompletionText(tokenizer: tokenizer, prompt: prompt, stops: ["\n\n", "END"], stopTokens: [ByteTokenizer.endOfText])
        var out = ""
        for byte in Array("ab\nc".utf8) { out += text.add(Int32(byte)).delta }
        XCTAssertEqual(out, "ab\nc", "a lone newline is released once the next byte shows it is no stop")
        XCTAssertEqual(text.add(Int32(Character("E").asciiValue!)).delta, "", "E may start END")
        XCTAssertEqual(text.add(Int32(Character("N").asciiValue!)).delta, "")
        let (delta, stopped) = text.add(Int32(Character("D").asciiValue!))
        XCTAssertTrue(stopped)
        XCTAssertEqual(delta, "", "the stop string is not part of the text")
        // A character of several bytes is sent whole, and the end-of-text token adds nothing.
        var unicode = CompletionText(tokenizer: tokenizer, prompt: prompt, stops: [], stopTokens: [ByteTokenizer.endOfText])
        let bytes = Array("é!".utf8)
        XCTAssertEqual(unicode.add(Int32(bytes[0])).delta, "", "half of é")
        XCTAssertEqual(unicode.add(Int32(bytes[1])).delta + unicode.add(Int32(bytes[2])).delta, "é!")
        XCTAssertEqual(unicode.add(ByteTokenizer.endOfText).delta + unicode.rest(), "")
        XCTAssertEqual(CompletionText.firstOccurrence(of: "cd", in: "abcdcd").map { "abcdcd".distance(from: "abcdcd".startIndex, to: $0) }, 2)
    }

    /// Incremental decoding gives, piece by piece, exactly the text of decoding the prompt and the continuation
    /// together minus the prompt's own — with SentencePiece-style (leading spaces), Llama 3-style and GPT-2-style
    /// byte-level BPE tokenizers, over text with multi-byte characters split across tokens.
    func testIncrementalDecodingEqualsWholeDecoding() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/tokenizers")
        let sample = " Hello world! Ünïcödé 日本語 text, with  spaces,\nnew lines\tand emoji 😀👍 at the end of it. done"
        for name in ["llama2-style-bpe.json", "llama3-style-bpe.json", "byte-level-bpe.json", "metaspace-style-bpe.json"] {
            let tokenizer = try BPETokenizer(tokenizerJSON: folder.appendingPathComponent(name).path)
            let prompt = try tokenizer.encode("Question:"), continuation = try tokenizer.encodeWithoutAddedTokens(sample)
            var text = CompletionText(tokenizer: tokenizer, prompt: prompt, stops: [], stopTokens: [])
            var streamed = ""
            for token in continuation { streamed += text.add(token).delta }
            streamed += text.rest()
            let whole = tokenizer.decode(prompt + continuation), promptText = tokenizer.decode(prompt)
            XCTAssertTrue(whole.hasPrefix(promptText), name)
            XCTAssertEqual(streamed, String(whole.dropFirst(promptText.count)), name)
            XCTAssertFalse(streamed.contains("\u{FFFD}"), "\(name): no piece ended inside a character")
        }
    }

    // MARK: Scheduler

    /// Twelve jobs through four slots: each greedy job gets the tokens `generate` gives it alone, steps carry several
    /// sequences at once, and every job ends with its reason.
    func testSchedulerBatchesJobsAndEachGetsWhatItGetsAlone() async throws {
        let reference = try Self.model()
        let scheduler = try CompletionScheduler(limits: .init(slots: 4, contextLength: 64)) { try Self.model() }
        defer { scheduler.shutdown() }
        let jobs = try (0..<12).map { index in
            CompletionJob(
                prompt: (0..<(3 + index % 5)).map { Int32(($0 * 37 + index * 11) % 256) }, maxTokens: 4 + index % 7,
                sampler: try TokenSampler(temperature: index % 3 == 0 ? 0.9 : 0, seed: UInt64(index)))
        }
        let expected = try jobs.map { job in
            try reference.generate([GenerationRequest(prompt: job.prompt, maxTokens: job.maxTokens, sampler: job.sampler)])[0]
        }
        let tickets = try jobs.map { try scheduler.submit($0) }
        let results = try await withThrowingTaskGroup(of: (Int, [CompletionEvent]).self) { group in
            for (index, ticket) in tickets.enumerated() {
                group.addTask {
                    var events: [CompletionEvent] = []
                    for try await event in ticket.events { events.append(event) }
                    return (index, events)
                }
            }
            return try await group.reduce(into: [Int: [CompletionEvent]]()) { $0[$1.0] = $1.1 }
        }
        for (index, tokens) in expected.enumerated() {
            XCTAssertEqual(results[index], tokens.map { .token($0) } + [.finished(.length)], "job \(index)")
        }
        XCTAssertGreaterThan(scheduler.statistics.widestStep, 1, "jobs ran together")
        XCTAssertLessThanOrEqual(scheduler.statistics.widestStep, 4, "never more than the slots")
        XCTAssertEqual(scheduler.statistics.completed, 12)
    }

    func testSchedulerRefusesWhatItCannotTake() throws {
        // A context long enough that the first job runs for thousands of steps (tenths of a second) while the
        // refusals below are asked for.
        let long = { () -> ModelConfiguration in
            var configuration = Self.configuration
            configuration.contextLength = 4096
            return configuration
        }()
        let scheduler = try CompletionScheduler(limits: .init(slots: 1, contextLength: 4096, queueLimit: 0)) { try Self.model(long) }
        defer { scheduler.shutdown() }
        let sampler = try TokenSampler(temperature: 0)
        // One slot, no queue: a second job while the first runs is refused.
        let running = try scheduler.submit(CompletionJob(prompt: [1], maxTokens: 4000, sampler: sampler))
        defer { running.cancel() }
        XCTAssertThrowsError(try scheduler.submit(CompletionJob(prompt: [], maxTokens: 1, sampler: sampler))) {
            XCTAssertEqual($0 as? CompletionScheduler.Failure, .emptyPrompt)
        }
        XCTAssertThrowsError(try scheduler.submit(CompletionJob(prompt: Array(repeating: 1, count: 4096), maxTokens: 1, sampler: sampler))) {
            XCTAssertEqual($0 as? CompletionScheduler.Failure, .promptTooLong(tokens: 4096, limit: 4096))
        }
        XCTAssertThrowsError(try scheduler.submit(CompletionJob(prompt: [2], maxTokens: 1, sampler: sampler))) {
            XCTAssertEqual($0 as? CompletionScheduler.Failure, .queueFull(waiting: 0))
        }
        XCTAssertThrowsError(try CompletionScheduler(limits: .init(slots: 1, contextLength: 8)) {
            throw TensorError.invalidArgument(operation: "load", reason: "no such model")
        }) { XCTAssertTrue("\($0)".contains("no such model")) }
    }

    /// A cancelled job frees its slot: the next job runs although there is one slot and the first asked for many tokens.
    func testCancelledJobsFreeTheirSlots() async throws {
        let scheduler = try CompletionScheduler(limits: .init(slots: 1, contextLength: 64)) { try Self.model() }
        defer { scheduler.shutdown() }
        let long = try scheduler.submit(CompletionJob(prompt: [1, 2], maxTokens: 60, sampler: try TokenSampler(temperature: 0)))
        var iterator = long.events.makeAsyncIterator()
        _ = try await iterator.next()
        long.cancel()
        let short = try scheduler.submit(CompletionJob(prompt: [3], maxTokens: 2, sampler: try TokenSampler(temperature: 0)))
        var events: [CompletionEvent] = []
        for try await event in short.events { events.append(event) }
        XCTAssertEqual(events.last, .finished(.length))
        XCTAssertLessThan(scheduler.statistics.generatedTokens, 60, "the long job stopped early")
    }

    // MARK: HTTP

    /// Runs `client` for every index at once, each on a queue of its own (each blocks on its socket; a thread pool the
    /// size of the machine would let only a few be in flight), and returns when all are done.
    static func everyClientAtOnce(_ count: Int, _ client: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for index in 0..<count { DispatchQueue(label: "client \(index)").async(group: group) { client(index) } }
        group.wait()
    }

    /// A chat template over the byte tokenizer: `<role>content` per message, `>` before the reply, `|` ending a turn
    /// (its eos_token, one byte: where a reply stops); it refuses a conversation that does not end with the user.
    static let chatTemplate = try! ChatTemplate(
        "{% if messages[-1].role != 'user' %}{{ raise_exception('the last message must be the user\\'s') }}{% endif %}"
            + "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}>{% endif %}",
        specialTokens: ["eos_token": "|"])

    /// Starts a server on a free loopback port; stops it when the test ends.
    func startServer(slots: Int = 4, queue: Int = 256, chatTemplate: ChatTemplate? = nil) throws -> (LoopbackClient, CompletionServer) {
        let scheduler = try CompletionScheduler(limits: .init(slots: slots, contextLength: 64, queueLimit: queue)) { try Self.model() }
        let server = CompletionServer(
            scheduler: scheduler, tokenizer: ByteTokenizer(), endOfText: ByteTokenizer.endOfText, chatTemplate: chatTemplate,
            configuration: .init(port: 0, modelName: "tiny", maxTokensLimit: 48, maxBodyBytes: 4096))
        let (port, task) = try server.start(waiting: 30)
        addTeardownBlock {
            task.cancel()
            _ = await task.result
            scheduler.shutdown()
        }
        return (LoopbackClient(port: port), server)
    }

    func testEndpointsAndErrors() throws {
        let (http, _) = try startServer()
        let health = try http.get("/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(try health.json()["status"] as? String, "ok")
        let models = try http.get("/v1/models").json()
        XCTAssertEqual(((models["data"] as? [[String: Any]])?.first?["id"]) as? String, "tiny")

        let completion = try http.post("/v1/completions", #"{"model":"tiny","prompt":"Hello","max_tokens":5,"temperature":0,"echo":true}"#)
        XCTAssertEqual(completion.status, 200, completion.body)
        let json = try completion.json()
        let choice = try XCTUnwrap((json["choices"] as? [[String: Any]])?.first)
        XCTAssertTrue((choice["text"] as? String)?.hasPrefix("Hello") == true, "echo: \(completion.body)")
        let usage = try XCTUnwrap(json["usage"] as? [String: Int])
        XCTAssertEqual(usage["prompt_tokens"], 5)
        XCTAssertEqual(usage["total_tokens"], 5 + (usage["completion_tokens"] ?? 0))
        XCTAssertEqual(json["object"] as? String, "text_completion")

        let refusals: [(String, String, Int, String)] = [
            ("/v1/completions", #"{"prompt":"x","max_tokens":0}"#, 400, "max_tokens must be in 1 … 48"),
            ("/v1/completions", #"{"prompt":"x","max_tokens":49}"#, 400, "max_tokens must be in 1 … 48"),
            ("/v1/completions", #"{"prompt":"#, 400, "not JSON"),
            ("/v1/completions", #"{"max_tokens":3}"#, 400, "prompt"),
            ("/v1/completions", #"{"prompt":"x","n":2}"#, 400, "n must be 1"),
            ("/v1/completions", #"{"prompt":"x","model":"gpt-4"}"#, 400, "serves tiny, not gpt-4"),
            ("/v1/completions", #"{"prompt":"x","temperature":-1}"#, 400, "temperature"),
            ("/v1/completions", #"{"prompt":"x","top_p":0}"#, 400, "top_p"),
            ("/v1/completions", #"{"prompt":[1,2,999]}"#, 400, "outside the vocabulary"),
            ("/v1/completions", #"{"prompt":""}"#, 400, "the prompt is empty"),
            ("/v1/completions", "{\"prompt\":\"\(String(repeating: "a", count: 60))\",\"max_tokens\":10}", 400, "the context holds 64 tokens"),
            ("/v1/completions", "{\"prompt\":\"\(String(repeating: "a", count: 5000))\"}", 413, "exceeds 4096 bytes"),
            ("/v1/chat/completions", #"{"messages":[]}"#, 404, "no chat template"),
        ]
        for (path, body, status, message) in refusals {
            let response = try http.post(path, body)
            XCTAssertEqual(response.status, status, "\(body.prefix(60)): \(response.body)")
            let error = try response.json()["error"] as? [String: Any]
            XCTAssertTrue((error?["message"] as? String)?.contains(message) == true, "\(body.prefix(60)): \(response.body)")
        }
    }

    /// The load test: 32 clients at once (streaming and not) through 4 slots. Every stream is well formed (chunks,
    /// a last one with the finish reason and usage, then [DONE]), and greedy requests get the same text streamed or
    /// not, alone or in the crowd; bounded in count and time.
    func testManyConcurrentStreamingClients() throws {
        let (http, server) = try startServer(slots: 4)
        @Sendable func body(_ index: Int, stream: Bool) -> String {
            #"{"prompt":"Client \#(index % 8):","max_tokens":\#(8 + index % 9),"temperature":0,"stream":\#(stream),"stop":["zz"]}"#
        }
        // Alone first: what each prompt gets.
        let alone = try (0..<32).map { index -> String in
            let response = try http.post("/v1/completions", body(index, stream: false))
            return try XCTUnwrap((try response.json()["choices"] as? [[String: Any]])?.first?["text"] as? String)
        }
        let texts = Mutex([Int: Result<String, any Error>]())
        let started = Date()
        Self.everyClientAtOnce(32) { index in
            let result = Result { () throws -> String in
                let stream = index % 2 == 0
                let response = try http.post("/v1/completions", body(index, stream: stream))
                guard response.status == 200 else { throw LoopbackClient.Failure(description: "status \(response.status): \(response.body)") }
                guard stream else {
                    return try XCTUnwrap((try response.json()["choices"] as? [[String: Any]])?.first?["text"] as? String)
                }
                XCTAssertEqual(response.headers["content-type"], "text/event-stream")
                let events = response.events
                XCTAssertEqual(events.last, "[DONE]", "client \(index)")
                let chunks = try events.dropLast().map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
                let choices = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first }
                XCTAssertTrue(choices.dropLast().allSatisfy { $0["finish_reason"] is NSNull }, "only the last chunk ends it")
                XCTAssertNotNil(choices.last?["finish_reason"] as? String, "client \(index)")
                XCTAssertNotNil(chunks.last?["usage"], "client \(index): usage on the last chunk")
                return choices.compactMap { $0["text"] as? String }.joined()
            }
            texts.withLock { $0[index] = result }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 120, "the load finishes in bounded time")
        for index in 0..<32 {
            XCTAssertEqual(try texts.withLock { $0[index] }?.get(), alone[index], "client \(index): streamed or not, alone or in the crowd")
        }
        XCTAssertEqual(server.scheduler.statistics.widestStep, 4, "requests were batched, as many as the slots")
    }

    /// Chat: the conversation goes through the template, and the reply is what greedy generation gives from the
    /// rendered prompt, cut before the end-of-turn token; streamed, a first chunk carries the role, then the content
    /// in pieces, the last one the finish reason. Bad conversations are refused with the template's own rule.
    func testChatCompletionsGoThroughTheTemplate() throws {
        let (http, _) = try startServer(chatTemplate: Self.chatTemplate)
        let messages = #"[{"role":"system","content":" Be brief. "},{"role":"user","content":"Hi"}]"#
        let prompt = try Self.chatTemplate.render(
            messages: [.dictionary(["role": "system", "content": " Be brief. "]), .dictionary(["role": "user", "content": "Hi"])], addGenerationPrompt: true)
        XCTAssertEqual(prompt, "<system>Be brief.|<user>Hi|>")
        // What the model gives that prompt, greedy, up to the end of turn ('|', byte 124) or 20 tokens.
        let model = try Self.model()
        let generated = try model.generate(
            prompt: ByteTokenizer().encode(prompt), maxTokens: 20, sampler: TokenSampler(temperature: 0), stopTokens: [124, ByteTokenizer.endOfText])
        let expected = ByteTokenizer().decode(generated.filter { $0 != 124 && $0 != ByteTokenizer.endOfText })

        let whole = try http.post("/v1/chat/completions", #"{"messages":\#(messages),"max_tokens":20,"temperature":0}"#)
        XCTAssertEqual(whole.status, 200, whole.body)
        let json = try whole.json()
        XCTAssertEqual(json["object"] as? String, "chat.completion")
        let choice = try XCTUnwrap((json["choices"] as? [[String: Any]])?.first)
        let message = try XCTUnwrap(choice["message"] as? [String: Any])
        XCTAssertEqual(message["role"] as? String, "assistant")
        XCTAssertEqual(message["content"] as? String, expected)
        XCTAssertEqual(choice["finish_reason"] as? String, generated.last == 124 ? "stop" : "length")
        XCTAssertEqual((json["usage"] as? [String: Int])?["prompt_tokens"], prompt.utf8.count)

        let streamed = try http.post("/v1/chat/completions", #"{"messages":\#(messages),"max_completion_tokens":20,"temperature":0,"stream":true}"#)
        XCTAssertEqual(streamed.status, 200, streamed.body)
        let events = streamed.events
        XCTAssertEqual(events.last, "[DONE]")
        let chunks = try events.dropLast().map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
        XCTAssertTrue(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
        let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
        XCTAssertEqual(deltas.first?["role"] as? String, "assistant")
        XCTAssertEqual(deltas.compactMap { $0["content"] as? String }.joined(), expected)
        XCTAssertNotNil((chunks.last?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String)

        let refusals: [(String, String)] = [
            (#"{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}"#, "the last message must be the user's"),
            (#"{"messages":[]}"#, "`messages` must be a non-empty list"),
            (#"{"messages":[{"content":"no role"}]}"#, "messages[0] needs a string `role`"),
            (#"{"messages":[{"role":"user","content":5}]}"#, "messages[0].content must be"),
            (#"{"messages":"#, "not JSON"),
            (#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, "max_tokens must be in 1 … 48"),
            (#"{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#, "`temperature` has the wrong type"),
        ]
        for (body, text) in refusals {
            let response = try http.post("/v1/chat/completions", body)
            XCTAssertEqual(response.status, 400, "\(body): \(response.body)")
            let error = try response.json()["error"] as? [String: Any]
            XCTAssertTrue((error?["message"] as? String)?.contains(text) == true, "\(body): \(response.body)")
        }
    }

    /// A full queue answers 503 with Retry-After instead of waiting without bound.
    func testAFullQueueIsRefusedWith503() throws {
        let (http, _) = try startServer(slots: 1, queue: 0)
        let statuses = Mutex([Int]())
        Self.everyClientAtOnce(6) { _ in
            let response = try? http.post("/v1/completions", #"{"prompt":"busy","max_tokens":40,"temperature":0}"#)
            statuses.withLock { $0.append(response?.status ?? -1) }
            if response?.status == 503 { XCTAssertEqual(response?.headers["retry-after"], "1") }
        }
        let seen = statuses.withLock { $0 }
        XCTAssertTrue(seen.contains(200), "\(seen)")
        XCTAssertTrue(seen.contains(503), "\(seen)")
        XCTAssertTrue(seen.allSatisfy { $0 == 200 || $0 == 503 }, "\(seen)")
    }
}
