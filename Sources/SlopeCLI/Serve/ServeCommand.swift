import ArgumentParser
import Dispatch
import FoundationEssentials
import SLoPe
import SlopeData
import SlopeServer
import Synchronization

/// `slope serve`: an OpenAI-compatible HTTP server over a checkpoint or a Hugging Face model folder.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model over HTTP with OpenAI's completions API (streaming, continuous batching).",
        discussion: """
            Endpoints: POST /v1/completions (prompt, max_tokens, temperature, top_p, top_k, stop, seed, echo, \
            stream), POST /v1/chat/completions (messages, tools; the same sampling fields) where the model has a chat \
            template, GET /v1/models, GET /health. Concurrent requests are generated together: each holds one of \
            --slots KV-cache slots, joins the running batch at the next step and leaves when done; more wait, up to \
            --queue, and beyond that get 503. Ctrl-C (SIGINT) or SIGTERM stops the server gracefully.
            """)

    @Argument(help: "A checkpoint.safetensors written by slope pretrain or import, or a Hugging Face model folder.")
    var checkpoint: String

    @Option(help: "Address to listen on (0.0.0.0 for every interface).")
    var host = "127.0.0.1"

    @Option(parsing: .unconditional, help: "TCP port (0: any free port, printed at start).")
    var port = 8000

    @Option(help: "The model name clients send and /v1/models lists (default: the checkpoint's folder name).")
    var modelName: String?

    @Option(parsing: .unconditional, help: "Sequences generated at once (KV-cache slots; default: 4 with --device cpu, else 32).")
    var slots: Int?

    @Option(parsing: .unconditional, help: "Positions per sequence, prompt and completion (default: the model's context length).")
    var context: Int?

    @Option(parsing: .unconditional, help: "Requests waiting for a slot before new ones get 503.")
    var queue = 256

    @Option(parsing: .unconditional, help: "The most tokens one request may ask for (default: the context).")
    var maxTokens: Int?

    @Option(help: "The chat template for /v1/chat/completions: a .jinja file or a tokenizer_config.json (default: chat_template.jinja or tokenizer_config.json beside the model's tokenizer files).")
    var chatTemplate: String?

    @Flag(help: "Keep SLoPe layers and adapters separate instead of merging them for inference.")
    var noMerge = false

    @Option(help: "auto, cpu or cuda.")
    var device: DeviceOption = .auto

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be a TCP port (0 … 65535), not \(port)") }
        guard slots.map({ $0 >= 1 }) ?? true else { throw ValidationError("--slots must be at least 1") }
        guard context.map({ $0 >= 2 }) ?? true else { throw ValidationError("--context must be at least 2") }
        guard queue >= 0 else { throw ValidationError("--queue must be ≥ 0") }
        guard maxTokens.map({ $0 >= 1 }) ?? true else { throw ValidationError("--max-tokens must be at least 1") }
        if let chatTemplate {
            do { _ = try ChatTemplate.load(file: chatTemplate) } catch { throw ValidationError("--chat-template: \(error)") }
        }
    }

    func run() throws {
        let data = Mutex<DataOptions?>(nil)
        let description = Mutex("")
        let (checkpoint, device, noMerge, slots, context) = (self.checkpoint, self.device, self.noMerge, self.slots, self.context)
        // The model is loaded on the scheduler's thread, where it then runs.
        let limits = CompletionScheduler.Limits(slots: slots ?? (device == .cpu ? 4 : 32), contextLength: context ?? Int.max, queueLimit: queue)
        let scheduler = try CompletionScheduler(limits: limits) {
            let compute = try ComputeDevice.make(device)
            let loaded = try LoadedCheckpoint.load(checkpoint, compute: compute)
            let sparse = !loaded.model.sparseWeights.isEmpty
            try GenerationPreparation.prepare(loaded.model, merging: !noMerge)
            data.withLock { $0 = loaded.data }
            let c = loaded.model.configuration
            description.withLock {
                $0 = "\(c.family), \(formatCount(c.parameterCount)) parameters, \(loaded.model.dtype) on \(compute.backend.name)"
                    + (sparse ? (noMerge ? ", SLoPe layers unmerged" : ", SLoPe layers merged") : "")
            }
            return loaded.model
        }
        defer { scheduler.shutdown() }
        guard let options = data.withLock({ $0 }) else { throw ValidationError("the model did not load") }
        let (tokenizer, endOfText) = try options.makeTokenizer()
        let name = modelName ?? Self.defaultName(checkpoint)
        let configuration = CompletionServer.Configuration(
            host: host, port: port, modelName: name, maxTokensLimit: maxTokens ?? scheduler.contextLength)
        let (template, templateSource) = try ChatTemplateLookup.find(given: chatTemplate, tokenizer: options.tokenizerFiles)
        let server = CompletionServer(
            scheduler: scheduler, tokenizer: tokenizer, endOfText: endOfText, chatTemplate: template, configuration: configuration)
        let header = "slope serve: \(name) (\(description.withLock { $0 })); \(limits.slots) sequences at once × "
            + "\(scheduler.contextLength) positions (KV cache), up to \(queue) waiting"
        let failure = Mutex<(any Error)?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await server.run(handlingSignals: true) { port in
                    say(header)
                    say(templateSource.map { "chat template: \($0)" }
                        ?? "no chat template (give one with --chat-template): POST /v1/chat/completions answers 404")
                    say("listening on http://\(configuration.host):\(port) — POST /v1/completions\(template == nil ? "" : ", POST /v1/chat/completions"), "
                        + "GET /v1/models, GET /health")
                }
            } catch {
                failure.withLock { $0 = error }
            }
            done.signal()
        }
        done.wait()
        if let error = failure.withLock({ $0 }) {
            throw ValidationError("slope serve could not serve on \(host):\(port): \(error)")
        }
        say("slope serve: stopped after \(scheduler.statistics.completed) completions (\(scheduler.statistics.generatedTokens) tokens)")
    }

    /// `runs/x/checkpoint.safetensors` → `x`; a model folder → its name.
    static func defaultName(_ path: String) -> String {
        let parts = path.split(separator: "/").map(String.init)
        guard let last = parts.last else { return "slope" }
        if last.hasSuffix(".safetensors") { return parts.count > 1 ? parts[parts.count - 2] : String(last.dropLast(12)) }
        return last
    }
}
