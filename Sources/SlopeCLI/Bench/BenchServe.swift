import ArgumentParser
import Dispatch
import FoundationEssentials
import SLoPe
import SlopeData
import SlopeServer
import Synchronization

/// `slope bench serve`: the throughput `slope serve` keeps under many concurrent streaming clients, beside what the same
/// scheduler gives with the jobs handed to it directly, on random weights of a model shape, in one run.
struct BenchServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Tokens/s of slope serve under concurrent streaming clients, against the same jobs run without HTTP.",
        discussion: """
            Starts the server on a loopback port with random weights of --model (SLoPe merged unless --dense), then \
            times --clients jobs of --prompt-tokens random tokens and --new-tokens greedy tokens each: first handed to \
            the scheduler directly (what `slope bench generate` runs at that batch size), then as as many concurrent \
            streaming HTTP clients. Medians of --repeats rounds after a warm-up.
            """)

    @Option(help: "Where to run: \(BenchDevice.allCases.map(\.rawValue).joined(separator: ", ")).")
    var device: BenchDevice = .cpu

    @Option(help: "Model shape: a named configuration or a JSON file (default: opt-1.3b on CUDA, tiny on the CPU).")
    var model: String?

    @Flag(help: "A dense model instead of SLoPe merged.")
    var dense = false

    @Option(parsing: .unconditional, help: "Concurrent clients (and KV-cache slots).")
    var clients = 32

    @Option(parsing: .unconditional, help: "Prompt tokens per request (default: 512 on CUDA, 32 on the CPU).")
    var promptTokens: Int?

    @Option(parsing: .unconditional, help: "Tokens generated per request (default: 128 on CUDA, 16 on the CPU).")
    var newTokens: Int?

    @Option(help: "Timed rounds, the median reported.")
    var repeats = 3

    func validate() throws {
        guard clients >= 1, repeats >= 1 else { throw ValidationError("--clients and --repeats must be at least 1") }
        guard (promptTokens ?? 1) >= 1, (newTokens ?? 1) >= 1 else { throw ValidationError("--prompt-tokens and --new-tokens must be at least 1") }
    }

    func run() throws {
        let onGPU = device == .cuda
        let name = GenerationWorkload.modelName(model, onGPU: onGPU)
        let configuration = try ModelConfiguration.resolve(name)
        let (prompt, new) = GenerationWorkload.lengths(prompt: promptTokens, new: newTokens, onGPU: onGPU)
        guard prompt + new <= configuration.contextLength else {
            throw ValidationError("--prompt-tokens \(prompt) + --new-tokens \(new) exceed the context length \(configuration.contextLength)")
        }
        let (dense, device) = (self.dense, self.device)
        let backendName = Mutex("")
        let scheduler = try CompletionScheduler(limits: .init(slots: clients, contextLength: prompt + new)) {
            let compute = try ComputeDevice.make(device == .cuda ? .cuda : .cpu)
            let network = try GenerationWorkload.model(configuration, mode: dense ? .dense : .merged, adapterRank: 64, on: compute).model
            backendName.withLock { $0 = "\(compute.backend.name), \(compute.defaultDType)" }
            return network
        }
        defer { scheduler.shutdown() }
        let prompts = GenerationWorkload.prompts(count: clients, length: prompt, vocabulary: configuration.vocabularySize)
        let server = CompletionServer(
            scheduler: scheduler, tokenizer: ByteTokenizer(), endOfText: nil,
            configuration: .init(port: 0, modelName: name, maxTokensLimit: new))
        let (port, task) = try server.start()
        defer { task.cancel() }
        let clock = ContinuousClock()
        let client = LoopbackClient(port: port)
        print("slope bench serve — \(name) \(dense ? "dense" : "SLoPe merged") on \(backendName.withLock { $0 }), \(clients) clients × "
            + "(\(prompt) prompt + \(new) new tokens), greedy; median of \(repeats) rounds after a warm-up")

        /// Seconds for every job to end, handed to the scheduler directly.
        func direct() throws -> Double {
            let start = clock.now
            let tickets = try prompts.map { tokens in
                try scheduler.submit(CompletionJob(prompt: tokens, maxTokens: new, sampler: try TokenSampler(temperature: 0)))
            }
            try Self.drain(tickets)
            return (clock.now - start) / .seconds(1)
        }
        /// Seconds for every client's stream to end, and how many tokens they got.
        func overHTTP() throws -> (Double, Int) {
            let start = clock.now
            let received = Mutex((tokens: 0, failure: nil as String?))
            // A queue per client: each blocks on its socket, and all must be in flight at once.
            let group = DispatchGroup()
            for index in 0..<clients { DispatchQueue(label: "slope.bench.client.\(index)").async(group: group) {
                let body = #"{"prompt":\#(prompts[index]),"max_tokens":\#(new),"temperature":0,"stream":true}"#
                do {
                    let response = try client.post("/v1/completions", body)
                    guard response.status == 200 else { throw ValidationError("status \(response.status): \(response.body)") }
                    guard let usage = response.events.compactMap({ Self.completionTokens(in: $0) }).last else {
                        // (a stream ended by a failed step carries the error instead of the usage)
                        // (the event before "[DONE]": a failed step's error)
                        let last = response.events.last { $0.trimmingCharacters(in: .whitespaces) != "[DONE]" }
                        throw ValidationError("a stream ended without its usage after \(response.events.count) events; the last: \(last ?? "none")")
                    }
                    received.withLock { $0.tokens += usage }
                } catch {
                    received.withLock { $0.failure = "\(error)" }
                }
            } }
            group.wait()
            if let failure = received.withLock({ $0.failure }) { throw ValidationError("a client failed: \(failure)") }
            return ((clock.now - start) / .seconds(1), received.withLock { $0.tokens })
        }
        /// `round` run `repeats` times: each round's result and how many scheduler steps it took.
        func rounds<R>(_ round: () throws -> R) rethrows -> (results: [R], steps: [Int]) {
            var results: [R] = [], steps: [Int] = []
            for _ in 0..<repeats {
                let before = scheduler.statistics.steps
                results.append(try round())
                steps.append(scheduler.statistics.steps - before)
            }
            return (results, steps)
        }
        _ = try direct()
        _ = try overHTTP()
        let directRounds = try rounds(direct)
        let servedRounds = try rounds(overHTTP)
        let served = servedRounds.results
        let directSeconds = median(directRounds.results), httpSeconds = median(served.map(\.0))
        let tokens = clients * new
        guard served.allSatisfy({ $0.1 == tokens }) else {
            throw ValidationError("the clients received \(served.map(\.1)) tokens, not \(tokens) each round")
        }
        var table = TextTable(headers: ["path", "seconds", "tokens/s (all tokens)", "of direct"])
        table.append(["scheduler, jobs handed directly", formatted(directSeconds, digits: 3), formatted(Double(tokens) / directSeconds, digits: 1), ""])
        table.append([
            "HTTP, \(clients) streaming clients", formatted(httpSeconds, digits: 3), formatted(Double(tokens) / httpSeconds, digits: 1),
            formatted(100 * directSeconds / httpSeconds, digits: 1) + "%",
        ])
        print(table.render())
        // Each round, so that a slow one (a batch size met for the first time: timed, then recorded) shows.
        for (path, seconds, steps) in [("direct", directRounds.results, directRounds.steps), ("HTTP", served.map(\.0), servedRounds.steps)] {
            print("  \(path) rounds: " + zip(seconds, steps).map { "\(formatted($0, digits: 3)) s in \($1) steps" }.joined(separator: ", "))
        }
        print("  widest step: \(scheduler.statistics.widestStep) sequences")
    }

    /// Waits, from synchronous code, until every ticket's events have ended; throws the first failure.
    static func drain(_ tickets: [CompletionScheduler.Ticket]) throws {
        final class Outcome: @unchecked Sendable {
            let done = DispatchSemaphore(value: 0)
            var failure: (any Error)?
        }
        let outcome = Outcome()
        Task {
            do {
                for ticket in tickets { for try await _ in ticket.events {} }
            } catch {
                outcome.failure = error
            }
            outcome.done.signal()
        }
        outcome.done.wait()
        if let failure = outcome.failure { throw failure }
    }

    /// `usage.completion_tokens` of a streamed chunk, if it carries usage.
    static func completionTokens(in event: String) -> Int? {
        guard let range = event.firstRange(of: "\"completion_tokens\":") else { return nil }
        return Int(event[range.upperBound...].prefix { $0.isNumber })
    }
}
