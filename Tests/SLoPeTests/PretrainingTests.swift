import FoundationEssentials
import SLoPe
import SlopeData
import SlopeTestSupport
import XCTest

/// The training pipeline: exact resume, checkpoint round trips and damaged files, and SLoPe reaching the
/// dense model's loss on the embedded corpus.
final class PretrainingTests: XCTestCase {
    let cpu = CPUBackend()

    static let corpus: (train: [Int32], validation: [Int32]) = {
        let tokens = ByteTokenizer().encode(EmbeddedCorpus().text(sentences: 3000, seed: 1))
        return TokenLoader.split(tokens, validationFraction: 0.1)
    }()

    let small = ModelConfiguration(
        family: .gpt, vocabularySize: 257, contextLength: 32, layers: 2, hiddenSize: 32, heads: 2, intermediateSize: 64)

    func temporaryPath(_ name: String) -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-tests-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: folder) }
        return folder + "/" + name
    }

    func trainer(_ configuration: ModelConfiguration, _ options: TrainingOptions, seed: UInt64 = 3) throws -> Trainer {
        try Trainer(
            model: TransformerModel(configuration: configuration, backend: cpu, seed: seed), options: options,
            trainTokens: Self.corpus.train, validationTokens: Self.corpus.validation)
    }

    func testResumeContinuesExactly() throws {
        // Adapters start at step 10 and Mc changes every 4 steps, so resuming at 5 and at 11 covers both phases.
        let options = TrainingOptions(
            steps: 14, batchSize: 4, sequenceLength: 16, gradientAccumulation: 2, learningRate: 3e-3, warmupSteps: 3,
            adapterFraction: 0.35, adapterRank: 4, maskChangeFrequency: 4, evaluationBatches: 2)
        let reference = try trainer(small, options)
        let expected = try (1...14).map { _ in try reference.trainStep().loss }
        XCTAssertTrue(reference.adaptersAttached)
        for stop in [5, 11] {
            let first = try trainer(small, options)
            for _ in 1...stop { _ = try first.trainStep() }
            let path = temporaryPath("checkpoint.safetensors")
            try Checkpoint.save(first, notes: ["tokenizer": "byte"], to: path)
            let resumed = try Checkpoint.resume(
                SafeTensors.read(path), backend: cpu, trainTokens: Self.corpus.train, validationTokens: Self.corpus.validation)
            XCTAssertEqual(resumed.step, stop)
            XCTAssertEqual(resumed.adaptersAttached, stop >= 10)
            let rest = try ((stop + 1)...14).map { _ in try resumed.trainStep().loss }
            XCTAssertEqual(rest, Array(expected[stop...]), "resumed at step \(stop): the loss sequence is identical")
            XCTAssertEqual(try resumed.validationLoss(), try reference.validationLoss())
        }
    }

    /// A simulated run with the original's other masks (along the output dimension, unstructured) trains, and its
    /// checkpoint brings back the very masks and weights (the plan is saved with the options).
    func testOtherMasksCheckpointAndResume() throws {
        for selection in [MaskSelection.outputDimension, .unstructured(sparsity: 0.6)] {
            let options = TrainingOptions(
                steps: 4, batchSize: 2, sequenceLength: 16, learningRate: 3e-3, warmupSteps: 1,
                sparsity: SparsityPlan(mode: .simulated, maskSelection: selection), adapterFraction: 0, evaluationBatches: 1)
            let run = try trainer(small, options)
            for _ in 1...2 { _ = try run.trainStep() }
            let path = temporaryPath("checkpoint.safetensors")
            try Checkpoint.save(run, to: path)
            let (model, state) = try Checkpoint.loadModel(SafeTensors.read(path), backend: cpu)
            XCTAssertEqual(state.options.sparsity?.maskSelection, selection)
            XCTAssertEqual(model.sparseWeights.count, run.model.sparseWeights.count)
            for (loaded, trained) in zip(model.sparseWeights, run.model.sparseWeights) {
                XCTAssertEqual(loaded.selection, selection)
                XCTAssertEqual(try cpu.uint8s(loaded.rowMask()), try cpu.uint8s(trained.rowMask()))
                XCTAssertEqual(try cpu.floats(loaded.prunedDense()), try cpu.floats(trained.prunedDense()))
            }
            let resumed = try Checkpoint.resume(SafeTensors.read(path), backend: cpu, trainTokens: Self.corpus.train, validationTokens: Self.corpus.validation)
            XCTAssertEqual(try resumed.trainStep().loss, try run.trainStep().loss)
        }
    }

    /// `optimizerState: .bfloat16` keeps both optimizers' moments in bf16 (half the bytes of float32), trains to
    /// nearly the same losses, saves the moments as bf16 and resumes exactly; the checkpoint's size is known before
    /// the first step (``Checkpoint/estimatedBytes(_:)`` equals the tensors written).
    func testBFloat16OptimizerStateHalvesTheMomentsAndResumesExactly() throws {
        func options(_ state: DType?) -> TrainingOptions {
            TrainingOptions(
                steps: 8, batchSize: 4, sequenceLength: 16, learningRate: 3e-3, warmupSteps: 2, adapterFraction: 0,
                maskChangeFrequency: 4, evaluationBatches: 2, optimizerState: state)
        }
        let (full, half) = (try trainer(small, options(nil)), try trainer(small, options(.bfloat16)))
        let trained = full.model.parameters.map(\.value.count).reduce(0, +) + full.model.sparseWeights.map(\.values.count).reduce(0, +)
        XCTAssertEqual(Checkpoint.estimatedBytes(full) - Checkpoint.estimatedBytes(half), 2 * 2 * trained, "2 moments × 2 bytes less per trained value")
        let fullLosses = try (1...8).map { _ in try full.trainStep().loss }
        let halfLosses = try (1...8).map { _ in try half.trainStep().loss }
        XCTAssertEqual(half.optimizerStateBytes * 2, full.optimizerStateBytes)
        for (a, b) in zip(halfLosses, fullLosses) { XCTAssertEqual(a, b, accuracy: 0.02 * b, "bf16 moments train as float32 ones do") }

        let reference = try trainer(small, options(.bfloat16))
        let expected = try (1...8).map { _ in try reference.trainStep().loss }
        XCTAssertEqual(expected, halfLosses)
        let first = try trainer(small, options(.bfloat16))
        for _ in 1...4 { _ = try first.trainStep() }
        let path = temporaryPath("checkpoint.safetensors")
        try Checkpoint.save(first, to: path)
        let file = try SafeTensors.read(path)
        let moments = file.tensors.filter { $0.key.hasPrefix("optimizer.") }
        XCTAssertFalse(moments.isEmpty)
        XCTAssertTrue(moments.values.allSatisfy { $0.dtype == .bfloat16 }, "moments saved as bf16")
        XCTAssertEqual(file.tensors.values.map(\.byteCount).reduce(0, +), Checkpoint.estimatedBytes(first), "the estimate is what is written")
        let resumed = try Checkpoint.resume(file, backend: cpu, trainTokens: Self.corpus.train, validationTokens: Self.corpus.validation)
        XCTAssertEqual(resumed.options.momentDType, .bfloat16)
        XCTAssertEqual(try (5...8).map { _ in try resumed.trainStep().loss }, Array(expected[4...]))
        XCTAssertThrowsError(try trainer(small, options(.float16))) { error in
            XCTAssertTrue("\(error)".contains("optimizer state must be float32 or bfloat16"), "\(error)")
        }
    }

    func testCheckpointRoundTripAndDamagedFiles() throws {
        let options = TrainingOptions(steps: 3, batchSize: 2, sequenceLength: 8, adapterFraction: 0.5, adapterRank: 2)
        let run = try trainer(small, options)
        for _ in 1...3 { _ = try run.trainStep() }
        let path = temporaryPath("run.safetensors")
        try Checkpoint.save(run, notes: ["tokenizer": "byte"], to: path)
        let file = try SafeTensors.read(path)
        XCTAssertEqual(try Checkpoint.state(of: file).notes["tokenizer"], "byte")
        let (model, state) = try Checkpoint.loadModel(file, backend: cpu)
        XCTAssertEqual(state.step, 3)
        let tokens = try cpu.tensor([72, 101, 108, 108, 111, 32, 119, 111] as [Int32], shape: [8])
        XCTAssertEqual(try cpu.floats(model.logits(tokens: tokens, batch: 1, sequence: 8)),
                       try cpu.floats(run.model.logits(tokens: tokens, batch: 1, sequence: 8)), "identical model after loading")
        XCTAssertEqual(model.sparseWeights.count, 12)
        for (loaded, original) in zip(model.sparseWeights, run.model.sparseWeights) {
            XCTAssertEqual(try cpu.uint8s(loaded.columnMask()), try cpu.uint8s(original.columnMask()), "Mc of \(loaded.name)")
        }

        // Truncated: the header promises more bytes than there are.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let truncated = temporaryPath("truncated.safetensors")
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try SafeTensors.read(truncated)) { error in
            guard case SafeTensors.Failure.corrupt = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        // Damaged data of the right length: the hash written with it no longer matches.
        var damaged = [UInt8](bytes)
        damaged[damaged.count - 3] ^= 0x10
        let flipped = temporaryPath("damaged.safetensors")
        try Data(damaged).write(to: URL(fileURLWithPath: flipped))
        XCTAssertThrowsError(try SafeTensors.read(flipped)) { error in
            guard case SafeTensors.Failure.corrupt = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("does not match the hash"), "\(error)")
        }
        // Garbage header, empty file, missing file, a safetensors file without slope's state.
        let garbage = temporaryPath("garbage.safetensors")
        try Data([16, 0, 0, 0, 0, 0, 0, 0] + Array("not json at all!".utf8)).write(to: URL(fileURLWithPath: garbage))
        XCTAssertThrowsError(try SafeTensors.read(garbage)) { XCTAssertTrue("\($0)".contains("JSON"), "\($0)") }
        let empty = temporaryPath("empty.safetensors")
        try Data().write(to: URL(fileURLWithPath: empty))
        XCTAssertThrowsError(try SafeTensors.read(empty)) { XCTAssertTrue("\($0)".contains("not a valid safetensors"), "\($0)") }
        XCTAssertThrowsError(try SafeTensors.read(temporaryPath("missing.safetensors"))) { XCTAssertTrue("\($0)".contains("no such file"), "\($0)") }
        let plain = temporaryPath("plain.safetensors")
        try SafeTensors.write([SafeTensors.record("x", cpu.tensor([1, 2] as [Float], shape: [2], dtype: .bfloat16), backend: cpu)], to: plain)
        let loadedX = try SafeTensors.read(plain).tensor("x", backend: cpu)
        XCTAssertEqual(loadedX.dtype, .bfloat16)
        XCTAssertEqual(try cpu.floats(loadedX), [1, 2], "bytes round-trip exactly")
        // The file is plain safetensors: 8-byte header length, JSON header, then the two bf16 values' bytes.
        let raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: plain)))
        XCTAssertEqual(Array(raw.suffix(4)), [0x80, 0x3F, 0x00, 0x40], "bf16 1.0 = 0x3F80 and 2.0 = 0x4000, little-endian")
        XCTAssertThrowsError(try Checkpoint.state(of: SafeTensors.read(plain))) { XCTAssertTrue("\($0)".contains("not a slope checkpoint"), "\($0)") }
        // A lazily computed tensor that does not match its declared shape stops the write and leaves no file.
        let mismatched = temporaryPath("mismatched.safetensors")
        let wrong = SafeTensors.record("y", dtype: .float32, shape: [3], backend: cpu) { try self.cpu.zeros([2], dtype: .float32) }
        XCTAssertThrowsError(try SafeTensors.write([wrong], to: mismatched)) { XCTAssertTrue("\($0)".contains("'y'"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: mismatched))
        // A checkpoint of another model shape names the tensor that does not fit.
        var other = try SafeTensors.read(path)
        XCTAssertNoThrow(try Checkpoint.loadModel(other, backend: cpu))
        other = try SafeTensors.read(plain)
        XCTAssertThrowsError(try other.load("x", into: cpu.zeros([3], dtype: .float32), backend: cpu)) { XCTAssertTrue("\($0)".contains("'x'"), "\($0)") }
    }

    func testNonFiniteLossStopsBeforeTheUpdate() throws {
        let options = TrainingOptions(steps: 20, batchSize: 2, sequenceLength: 8, learningRate: 1e6, warmupSteps: 0, clipNorm: 0)
        let run = try trainer(small, options)
        var failure: Trainer.Failure?
        for _ in 1...20 where failure == nil {
            do { _ = try run.trainStep() } catch let error as Trainer.Failure { failure = error }
        }
        guard case .nonFinite(let step, _) = failure else { return XCTFail("a learning rate of 1e6 must blow up") }
        XCTAssertEqual(run.step, step - 1, "the failed step did not count")
        XCTAssertTrue("\(failure!)".contains("Lower the learning rate"))
    }

    /// The acceptance test: on the embedded corpus a tiny SLoPe model ends within 10% of the dense
    /// model's validation loss, and its adapter phase does not make it worse.
    func testSLoPeReachesTheDenseLossAndAdaptersDoNotHurt() throws {
        let configuration = ModelConfiguration(
            family: .gpt, vocabularySize: 257, contextLength: 64, layers: 2, hiddenSize: 128, heads: 4, intermediateSize: 512)
        let steps = 500
        var dense = TrainingOptions(steps: steps, batchSize: 8, sequenceLength: 48, learningRate: 3e-3, warmupSteps: 10, sparsity: nil,
                                    evaluationBatches: 8)
        dense.weightDecay = 0.01
        var sparse = dense
        sparse.sparsity = SparsityPlan()
        sparse.adapterFraction = 0.1
        sparse.adapterRank = 8
        let denseRun = try trainer(configuration, dense)
        for _ in 1...steps { _ = try denseRun.trainStep() }
        let sparseRun = try trainer(configuration, sparse)
        var beforeAdapters = 0.0
        for step in 1...steps {
            if step == sparseRun.adapterStartStep { beforeAdapters = try sparseRun.validationLoss() }
            _ = try sparseRun.trainStep()
        }
        let (denseLoss, sparseLoss) = (try denseRun.validationLoss(), try sparseRun.validationLoss())
        let initial = log(257.0)
        XCTAssertLessThan(denseLoss, 0.5 * initial, "the dense model learned (from \(initial))")
        XCTAssertLessThan(sparseLoss, denseLoss * 1.1, "SLoPe within 10% of dense (\(sparseLoss) vs \(denseLoss))")
        XCTAssertLessThanOrEqual(sparseLoss, beforeAdapters * 1.01, "adapters do not make it worse (\(sparseLoss) vs \(beforeAdapters))")
        print("dense \(denseLoss), SLoPe \(sparseLoss) (before adapters \(beforeAdapters)), floor \(EmbeddedCorpus().entropyPerByte)")
    }
}
