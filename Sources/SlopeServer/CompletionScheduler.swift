import Dispatch
import SLoPe
import Synchronization

/// One sequence the server generates: its prompt, its sampler and where it ends.
/// A request the scheduler runs: a prompt, its limits, its sampler and stop tokens (the rule for its end is
/// ``GenerationRequest/finish(after:generated:cached:capacity:)``, as in `generate`).
public typealias CompletionJob = GenerationRequest

/// What a job's stream carries: each token as it is chosen, then why it ended.
public enum CompletionEvent: Sendable, Equatable {
    case token(Int32)
    /// `stop`: the stop token (or a stop string, decided by the caller, who then cancels); `length`: max tokens or
    /// the context.
    case finished(FinishReason)

    public typealias FinishReason = GenerationRequest.Finish
}

/// Continuous batching: every sequence being generated holds a slot of one ``KeyValueCache``, and each step is one
/// forward pass that adds a token to every running sequence and prefills the prompts of newly admitted ones (packed
/// together, ``TransformerModel/nextTokenLogits(tokens:segments:cache:)``). A request joins at the next step and
/// leaves when it ends, so a long generation never holds up a short one, and what a sequence gets does not depend on
/// what it ran beside (its own sampler; greedy tokens equal those of `generate` alone).
///
/// The model runs on a thread of the scheduler's own (a GPU context is bound to one thread); requests are queued,
/// up to `queueLimit` waiting, and refused beyond.
public final class CompletionScheduler: @unchecked Sendable {
    public struct Limits: Sendable {
        /// Sequences generated at once (KV-cache slots).
        public var slots: Int
        /// Positions per sequence: prompt plus generated tokens.
        public var contextLength: Int
        /// Requests waiting for a slot (all slots busy) before new ones are refused.
        public var queueLimit: Int
        /// Prompt tokens prefilled in one step at most (more wait for the next): bounds how long running sequences
        /// pause for new prompts.
        public var prefillTokensPerStep: Int

        public init(slots: Int, contextLength: Int, queueLimit: Int = 256, prefillTokensPerStep: Int = 4096) {
            self.slots = slots
            self.contextLength = contextLength
            self.queueLimit = queueLimit
            self.prefillTokensPerStep = prefillTokensPerStep
        }
    }

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case queueFull(waiting: Int)
        case promptTooLong(tokens: Int, limit: Int)
        case emptyPrompt
        case stopped

        public var description: String {
            switch self {
            case let .queueFull(waiting): return "the server is busy: \(waiting) requests are already waiting; retry later"
            case let .promptTooLong(tokens, limit):
                return "the prompt has \(tokens) tokens; this server generates after at most \(limit - 1) (its context is \(limit))"
            case .emptyPrompt: return "the prompt is empty"
            case .stopped: return "the server is shutting down"
            }
        }
    }

    public let limits: Limits
    /// Positions per sequence: the limits' context, or the model's if shorter.
    public private(set) var contextLength: Int
    /// The model's vocabulary.
    public private(set) var vocabularySize = 0
    /// Counters since start, for /health and the load test.
    public struct Statistics: Sendable, Equatable {
        public var steps = 0
        public var completed = 0
        public var generatedTokens = 0
        /// The most sequences one step advanced.
        public var widestStep = 0
    }

    private final class Entry: @unchecked Sendable {
        let job: CompletionJob
        let continuation: AsyncThrowingStream<CompletionEvent, any Error>.Continuation
        var sampler: TokenSampler
        var generated = 0
        var slot = -1
        var last: Int32 = 0
        let cancelled = Atomic<Bool>(false)
        init(_ job: CompletionJob, _ continuation: AsyncThrowingStream<CompletionEvent, any Error>.Continuation) {
            self.job = job
            self.continuation = continuation
            sampler = job.sampler
        }
    }

    private struct State {
        var waiting: [Entry] = []
        /// Jobs submitted and not yet ended (waiting or running).
        var outstanding = 0
        var stopping = false
        var statistics = Statistics()
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the model thread: `load` makes the model there (and everything it computes stays on that thread).
    /// Returns once the model is loaded and the cache allocated, or throws what stopped them.
    public init(limits: Limits, load: @escaping @Sendable () throws -> TransformerModel) throws {
        self.limits = limits
        contextLength = limits.contextLength
        let started = DispatchSemaphore(value: 0)
        let startError = Mutex<(any Error)?>(nil)
        // One block on a queue of its own: the whole loop runs on one thread.
        DispatchQueue(label: "slope.scheduler").async { [self] in
            do {
                let model = try load()
                contextLength = min(limits.contextLength, model.configuration.contextLength)
                vocabularySize = model.configuration.vocabularySize
                let cache = try KeyValueCache(model: model, slots: limits.slots, capacity: contextLength)
                started.signal()
                run(model: model, cache: cache)
            } catch {
                startError.withLock { $0 = error }
                started.signal()
            }
            finished.signal()
        }
        started.wait()
        if let error = startError.withLock({ $0 }) { throw error }
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// A queued job: its events, and how to end it early (a client that went away, a stop string found).
    public struct Ticket: Sendable {
        public let events: AsyncThrowingStream<CompletionEvent, any Error>
        public let cancel: @Sendable () -> Void
    }

    /// Queues `job`; its tokens arrive as events. A cancelled ticket, or one whose events are no longer read, ends
    /// the job at the next step.
    public func submit(_ job: CompletionJob) throws -> Ticket {
        guard !job.prompt.isEmpty else { throw Failure.emptyPrompt }
        guard job.prompt.count < contextLength else { throw Failure.promptTooLong(tokens: job.prompt.count, limit: contextLength) }
        let (stream, continuation) = AsyncThrowingStream<CompletionEvent, any Error>.makeStream()
        let entry = Entry(job, continuation)
        continuation.onTermination = { _ in entry.cancelled.store(true, ordering: .relaxed) }
        try state.withLock { state in
            guard !state.stopping else { throw Failure.stopped }
            guard state.outstanding < limits.slots + limits.queueLimit else {
                throw Failure.queueFull(waiting: max(state.outstanding - limits.slots, 0))
            }
            state.outstanding += 1
            state.waiting.append(entry)
        }
        wake.signal()
        return Ticket(events: stream) {
            entry.cancelled.store(true, ordering: .relaxed)
            self.wake.signal()
        }
    }

    /// Ends every job (their streams finish with ``Failure/stopped``) and the model thread.
    public func shutdown() {
        let already = state.withLock { state in
            defer { state.stopping = true }
            return state.stopping
        }
        guard !already else { return }
        wake.signal()
        finished.wait()
    }

    deinit { shutdown() }

    // MARK: The model thread

    private func run(model: TransformerModel, cache: KeyValueCache) {
        var running: [Entry] = []
        var freeSlots = Array((0..<limits.slots).reversed())
        while true {
            // Admit waiting jobs into free slots, within the step's prefill budget (at least one, so none starves).
            let (admitted, stopping) = state.withLock { state -> ([Entry], Bool) in
                var taken: [Entry] = []
                var budget = limits.prefillTokensPerStep
                while taken.count < freeSlots.count, let next = state.waiting.first,
                      taken.isEmpty || next.job.prompt.count <= budget {
                    budget -= next.job.prompt.count
                    taken.append(state.waiting.removeFirst())
                }
                return (taken, state.stopping)
            }
            if stopping {
                let waiting = state.withLock { state in defer { state.waiting = [] }; return state.waiting }
                for entry in running + admitted + waiting { entry.continuation.finish(throwing: Failure.stopped) }
                return
            }
            for entry in admitted {
                entry.slot = freeSlots.removeLast()
                cache.reset(slot: entry.slot)
            }
            // Sequences whose client went away leave before the step.
            func keep(_ entry: Entry) -> Bool {
                guard entry.cancelled.load(ordering: .relaxed) else { return true }
                entry.continuation.finish()
                freeSlots.append(entry.slot)
                state.withLock { $0.outstanding -= 1 }
                return false
            }
            running = running.filter(keep)
            let starting = admitted.filter(keep)
            if running.isEmpty && starting.isEmpty {
                wake.wait()
                continue
            }
            let stepping = running + starting
            let segments = running.map { KeyValueCache.Segment(slot: $0.slot, count: 1) }
                + starting.map { KeyValueCache.Segment(slot: $0.slot, count: $0.job.prompt.count) }
            let tokens = running.map(\.last) + starting.flatMap(\.job.prompt)
            do {
                let logits = try model.nextTokenLogits(tokens: tokens, segments: segments, cache: cache)
                var samplers = stepping.map(\.sampler)
                let chosen = try model.nextTokens(logits, samplers: &samplers)
                var next: [Entry] = [], ended: [(Entry, CompletionEvent.FinishReason)] = []
                for (row, entry) in stepping.enumerated() {
                    entry.sampler = samplers[row]
                    entry.generated += 1
                    entry.last = chosen[row]
                    if let reason = entry.job.finish(after: chosen[row], generated: entry.generated, cached: cache.lengths[entry.slot], capacity: cache.capacity) {
                        ended.append((entry, reason))
                        freeSlots.append(entry.slot)
                    } else {
                        next.append(entry)
                    }
                }
                running = next
                // Counted before the streams end, so a client that sees its end sees it counted (and may submit again).
                state.withLock { state in
                    state.outstanding -= ended.count
                    state.statistics.steps += 1
                    state.statistics.generatedTokens += stepping.count
                    state.statistics.completed += ended.count
                    state.statistics.widestStep = max(state.statistics.widestStep, stepping.count)
                }
                for entry in stepping { entry.continuation.yield(.token(entry.last)) }
                for (entry, reason) in ended {
                    entry.continuation.yield(.finished(reason))
                    entry.continuation.finish()
                }
            } catch {
                // A failed step (out of memory, a device error) ends the sequences it carried, not the server.
                for entry in stepping {
                    entry.continuation.finish(throwing: error)
                    freeSlots.append(entry.slot)
                }
                state.withLock { $0.outstanding -= stepping.count }
                running = []
            }
        }
    }
}
