import FoundationEssentials
import SLoPe
import SlopeData
import SlopeTestSupport
import XCTest

/// BERT pretraining: a tiny encoder learns masked tokens of the embedded corpus through ``EncoderTrainer`` (SLoPe
/// 2:4 with sparse LAMB, next-sentence prediction on), and a checkpointed run resumes exactly.
final class EncoderPretrainingTests: XCTestCase {
    let cpu = CPUBackend()

    /// The embedded corpus as sentence pairs of at most 32 tokens, in a vocabulary made from it.
    static let data: (tokenizer: WordPieceTokenizer, train: [MaskedLanguageModeling.Instance], validation: [MaskedLanguageModeling.Instance]) = {
        let text = PretrainingDocuments.embedded(sentences: 1200)
        let tokenizer = try! WordPieceTokenizer(tokenizerJSONData: WordPieceVocabularyBuilder.tokenizerJSON(text: text, size: 200))
        let documents = try! PretrainingDocuments.tokenize(PretrainingDocuments.split(text), tokenizer.encodeWithoutAddedTokens)
        var generator = SeededGenerator(seed: 1)
        let instances = try! masking(tokenizer).instances(documents: documents, using: &generator)
        return (tokenizer, Array(instances.dropLast(16)), Array(instances.suffix(16)))
    }()

    static func masking(_ tokenizer: WordPieceTokenizer) throws -> MaskedLanguageModeling {
        try MaskedLanguageModeling(
            special: .init(tokenizer), vocabularySize: tokenizer.vocabularySize, sequenceLength: 32, maxPredictions: 5)
    }

    func trainer(_ options: TrainingOptions, mode: MaskedLanguageModelingBatches.Masking = .dynamic) throws -> EncoderTrainer {
        let data = Self.data, masking = try Self.masking(data.tokenizer)
        let configuration = EncoderConfiguration(
            vocabularySize: data.tokenizer.vocabularySize, contextLength: 32, layers: 2, hiddenSize: 32, heads: 4, intermediateSize: 64)
        return try EncoderTrainer(
            model: EncoderModel(configuration: configuration, backend: cpu, seed: 2), options: options,
            train: MaskedLanguageModelingBatches(instances: data.train, masking: masking, mode: mode, batchSize: options.batchSize, seed: 3),
            validation: MaskedLanguageModelingBatches(instances: data.validation, masking: masking, mode: .static, batchSize: options.batchSize, seed: 4))
    }

    func temporaryPath(_ name: String) -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-tests-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: folder) }
        return folder + "/" + name
    }

    /// The embedded corpus's words are drawn independently, so a masked word's best guess is its slot's word list
    /// (adjective, noun, verb or count: ln 4 … ln 12 nats) and the grammar words (the, a, '.') are certain: about
    /// 1.3–1.6 nats for a model that learned the grammar, against ≈ 4.4 at chance over the vocabulary (made from the
    /// corpus: its ~30 words and their characters) and ≈ 3.3 for word frequencies alone, where BERT-style training
    /// first plateaus. A 2:4 SLoPe encoder with sparse LAMB gets well past the plateau in 600 steps, keeps its
    /// masks, and its adapters start for the last steps.
    func testSLoPeEncoderLearnsTheCorpusWithLAMB() throws {
        let options = TrainingOptions(
            steps: 600, batchSize: 8, sequenceLength: 32, learningRate: 2e-2, warmupSteps: 30, decay: .polynomial, weightDecay: 0.01,
            beta1: 0.9, beta2: 0.999, adapterFraction: 0.02, adapterRank: 4, evaluationBatches: 2, epsilon: 1e-6,
            weightDecayScope: .matrices, optimizer: .lamb)
        let trainer = try self.trainer(options)
        XCTAssertEqual(trainer.model.sparseWeights.count, 12)
        let before = try trainer.validationLosses()
        XCTAssertGreaterThan(before.maskedLanguageModelLoss, 4.0, "starts near chance")
        var results: [EncoderTrainer.StepResult] = []
        for _ in 0..<options.steps { results.append(try trainer.trainStep()) }
        XCTAssertEqual(results.filter(\.startedAdapters).map(\.step), [589])
        XCTAssertTrue(results.allSatisfy { $0.nextSentenceLoss != nil && $0.loss == $0.maskedLanguageModelLoss + $0.nextSentenceLoss! })
        let after = try trainer.validationLosses()
        XCTAssertLessThan(after.maskedLanguageModelLoss, 2.6, "learned the grammar: \(before.maskedLanguageModelLoss) → \(after.maskedLanguageModelLoss)")
        XCTAssertLessThan(after.nextSentenceLoss!, 0.8, "next-sentence loss stays near ln 2 or below (independent sentences)")
        XCTAssertGreaterThan(trainer.tokensSeen, 600 * 8 * 10)
        for weight in trainer.model.sparseWeights {
            let values = try cpu.floats(weight.prunedDense())
            for group in stride(from: 0, to: values.count, by: 4) {
                XCTAssertLessThanOrEqual(values[group..<(group + 4)].filter { $0 != 0 }.count, 2, weight.name)
            }
        }
    }

    /// A run checkpointed before and after its adapters start resumes with the very losses of the uninterrupted run
    /// (the batches' position, masks, optimizer moments and adapters all restored); decoder commands refuse the file.
    func testEncoderCheckpointResumesExactly() throws {
        let options = TrainingOptions(
            steps: 10, batchSize: 4, sequenceLength: 32, gradientAccumulation: 2, learningRate: 3e-3, warmupSteps: 2,
            adapterFraction: 0.3, adapterRank: 4, maskChangeFrequency: 3, evaluationBatches: 2, optimizer: .lamb)
        let reference = try trainer(options, mode: .dynamic)
        let expected = try (1...10).map { _ in try reference.trainStep().loss }
        for stop in [4, 8] {
            let first = try trainer(options, mode: .dynamic)
            for _ in 1...stop { _ = try first.trainStep() }
            let path = temporaryPath("checkpoint.safetensors")
            try EncoderCheckpoint.save(first, notes: ["tokenizer": "built"], to: path)
            let file = try SafeTensors.read(path)
            XCTAssertEqual(try EncoderCheckpoint.state(of: file).notes["tokenizer"], "built")
            let masking = try Self.masking(Self.data.tokenizer)
            let resumed = try EncoderCheckpoint.resume(
                file, backend: cpu,
                train: MaskedLanguageModelingBatches(instances: Self.data.train, masking: masking, mode: .dynamic, batchSize: 4, seed: 3),
                validation: MaskedLanguageModelingBatches(instances: Self.data.validation, masking: masking, mode: .static, batchSize: 4, seed: 4))
            XCTAssertEqual(resumed.step, stop)
            XCTAssertEqual(resumed.adaptersAttached, stop >= 8)
            let rest = try ((stop + 1)...10).map { _ in try resumed.trainStep().loss }
            XCTAssertEqual(rest, Array(expected[stop...]), "resumed at step \(stop)")
            XCTAssertEqual(try resumed.validationLosses().loss, try reference.validationLosses().loss)
            XCTAssertThrowsError(try Checkpoint.loadModel(file, backend: cpu)) {
                XCTAssertTrue("\($0)".contains("BERT-style encoder") && "\($0)".contains("slope finetune"), "\($0)")
            }
        }
    }
}
