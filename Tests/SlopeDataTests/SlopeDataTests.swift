import FoundationEssentials
import RealModule
import SlopeData
import XCTest

final class SlopeDataTests: XCTestCase {
    func testByteTokenizerRoundTripsAnyText() {
        let tokenizer = ByteTokenizer()
        for text in ["", "hello, world", "naïve café — 東京 🚀", "line\nbreak\ttab"] {
            let tokens = tokenizer.encode(text)
            XCTAssertEqual(tokens.count, text.utf8.count)
            XCTAssertTrue(tokens.allSatisfy { (0...255).contains($0) })
            XCTAssertEqual(tokenizer.decode(tokens), text)
        }
        XCTAssertEqual(tokenizer.decode([104, ByteTokenizer.endOfText, 105]), "hi")
        XCTAssertEqual(tokenizer.vocabularySize, 257)
    }

    func testCorpusIsDeterministicAndItsFloorMatchesTheText() {
        let corpus = EmbeddedCorpus()
        let text = corpus.text(sentences: 20_000, seed: 7)
        XCTAssertEqual(text, corpus.text(sentences: 20_000, seed: 7))
        XCTAssertNotEqual(text, corpus.text(sentences: 20_000, seed: 8))
        XCTAssertTrue(text.hasPrefix("The ") || text.hasPrefix("A "))
        // Measure the entropy the text actually carries: each sentence's choices over its bytes.
        let sentences = text.split(separator: ".", omittingEmptySubsequences: true).map { $0.trimmingPrefixSpaces() }.filter { !$0.isEmpty }
        XCTAssertEqual(sentences.count, 20_000)
        let perTemplate = [
            Double.log(2) + Double.log(8) + 2 * Double.log(12) + Double.log(6),
            Double.log(2) + 2 * Double.log(12) + Double.log(6) + Double.log(4),
        ]
        let nats = sentences.map { $0.hasPrefix("The ") ? perTemplate[0] : perTemplate[1] }.reduce(0, +)
        let measured = nats / Double(text.utf8.count)
        XCTAssertEqual(measured, corpus.entropyPerByte, accuracy: corpus.entropyPerByte * 0.01)
        XCTAssertGreaterThan(corpus.entropyPerByte, 0.2)
        XCTAssertLessThan(corpus.entropyPerByte, 0.5)
    }

    func testShardsRoundTripAndReportDamage() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-shards-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for tokens in [[Int32]([1, 2, 256, 65_535]), [0, 70_000, 5]] {
            let path = folder + "/t.bin"
            try TokenShard.write(tokens, to: path)
            XCTAssertEqual(try TokenShard.read(path), tokens)
        }
        let path = folder + "/cut.bin"
        try TokenShard.write(Array(repeating: 3, count: 100), to: path)
        let whole = FileManager.default.contents(atPath: path)!
        try Data(whole.prefix(whole.count - 10)).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TokenShard.read(path)) { error in
            XCTAssertEqual(error as? TokenShard.Failure, .truncated(path: path, expectedTokens: 100, availableBytes: 190))
        }
        try Data("not a shard at all, just text....".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TokenShard.read(path)) { error in
            XCTAssertEqual(error as? TokenShard.Failure, .notAShard(path: path))
        }
        XCTAssertThrowsError(try TokenShard.read(folder + "/missing.bin"))
    }

    func testLoaderVisitsEveryWindowOncePerEpochAndResumesExactly() throws {
        let tokens = (0..<1000).map { Int32($0 % 257) }
        var loader = try TokenLoader(tokens: tokens, batchSize: 4, sequenceLength: 9, seed: 3)
        XCTAssertEqual(loader.windowsPerEpoch, 100)
        var starts: [Int32] = []
        for _ in 0..<25 {
            let batch = loader.next()
            XCTAssertEqual(batch.inputs.count, 36)
            for row in 0..<4 {
                XCTAssertEqual(Array(batch.inputs[(row * 9 + 1)..<(row * 9 + 9)]), Array(batch.targets[(row * 9)..<(row * 9 + 8)]))
                starts.append(batch.inputs[row * 9])
            }
        }
        XCTAssertEqual(Set(starts.map { Int($0) }).count, Set((0..<100).map { ($0 * 10) % 257 }).count, "each window once")
        XCTAssertEqual(loader.position, .init(epoch: 0, window: 100))
        let saved = loader.position
        let expected = (0..<30).map { _ in loader.next() }
        XCTAssertEqual(loader.position, .init(epoch: 2, window: 20), "two epoch boundaries crossed")
        var resumed = try TokenLoader(tokens: tokens, batchSize: 4, sequenceLength: 9, seed: 3)
        resumed.restore(saved)
        for batch in expected {
            let again = resumed.next()
            XCTAssertEqual(again.inputs, batch.inputs)
            XCTAssertEqual(again.targets, batch.targets)
        }
    }

    /// Random sampling: every sequence is a contiguous slice at some offset (not only window starts), the batches
    /// are a function of the seed alone, and a loader restored at a saved position continues identically.
    func testRandomSamplingIsSeededResumableAndCoversOtherOffsets() throws {
        let tokens = (0..<1000).map(Int32.init)
        var loader = try TokenLoader(tokens: tokens, batchSize: 4, sequenceLength: 9, seed: 5, sampling: .random)
        var starts: Set<Int32> = []
        var batches: [[Int32]] = []
        for _ in 0..<50 {
            let (inputs, targets) = loader.next()
            for row in 0..<4 {
                let input = Array(inputs[(row * 9)..<((row + 1) * 9)]), target = Array(targets[(row * 9)..<((row + 1) * 9)])
                XCTAssertEqual(input.dropFirst().map { $0 }, Array(input.dropLast().map { $0 + 1 }), "a contiguous slice")
                XCTAssertEqual(target, input.map { $0 + 1 }, "targets shifted by one")
                starts.insert(input[0])
            }
            batches.append(inputs)
        }
        XCTAssertEqual(loader.position.window, 200, "sequences drawn")
        XCTAssertTrue(starts.contains { $0 % 10 != 0 }, "offsets other than window starts")
        XCTAssertGreaterThan(starts.count, 150)
        var again = try TokenLoader(tokens: tokens, batchSize: 4, sequenceLength: 9, seed: 5, sampling: .random)
        XCTAssertEqual((0..<50).map { _ in again.next().inputs }, batches, "the same seed, the same batches")
        var resumed = try TokenLoader(tokens: tokens, batchSize: 4, sequenceLength: 9, seed: 5, sampling: .random)
        resumed.restore(TokenLoader.Position(epoch: 0, window: 120))
        XCTAssertEqual((0..<20).map { _ in resumed.next().inputs }, Array(batches[30...]), "resumed mid-run")
        var other = try TokenLoader(tokens: tokens, batchSize: 4, sequenceLength: 9, seed: 6, sampling: .random)
        XCTAssertNotEqual(other.next().inputs, batches[0])
    }

    /// The data order is a contract: checkpoints resume it and bench/pytorch/train_reference.py ports it (these
    /// numbers are what the port computes), so a change here must be deliberate.
    func testDataOrderMatchesThePyTorchReferencePort() throws {
        var windows = try TokenLoader(tokens: (0..<50).map(Int32.init), batchSize: 2, sequenceLength: 4, seed: 7)
        let epochs = (0..<10).map { _ in windows.next().inputs }.map { $0.enumerated().filter { $0.offset % 4 == 0 }.map { Int($0.element) / 5 } }
        XCTAssertEqual(Array(epochs.joined()), [8, 1, 5, 9, 0, 4, 3, 2, 6, 7] + [1, 5, 4, 9, 0, 2, 3, 8, 6, 7])
        var random = try TokenLoader(tokens: (0..<1000).map(Int32.init), batchSize: 3, sequenceLength: 4, seed: 7, sampling: .random)
        let starts = (0..<2).flatMap { _ in random.next().inputs.enumerated().filter { $0.offset % 4 == 0 }.map(\.element) }
        XCTAssertEqual(starts, [459, 674, 747, 166, 127, 345])
    }

    /// Data parallelism: two ranks' parts of each global batch are, together, the batch of one loader with twice the
    /// batch size, across epochs and for both samplings; a position saved by the job continues in one process.
    func testRanksShareTheGlobalBatchAndResumeAtAnotherWorldSize() throws {
        let tokens = (0..<500).map(Int32.init)
        for sampling in TokenLoader.Sampling.allCases {
            var single = try TokenLoader(tokens: tokens, batchSize: 6, sequenceLength: 9, seed: 3, sampling: sampling)
            var ranks = try (0..<2).map { _ in try TokenLoader(tokens: tokens, batchSize: 3, sequenceLength: 9, seed: 3, sampling: sampling) }
            for step in 0..<20 {  // 50 windows: several epochs
                let whole = single.next().inputs
                let parts = (0..<2).flatMap { ranks[$0].next(part: $0, of: 2).inputs }
                XCTAssertEqual(parts, whole, "\(sampling), step \(step)")
                XCTAssertEqual(ranks[0].position, single.position)
                XCTAssertEqual(ranks[1].position, single.position)
            }
            var resumed = try TokenLoader(tokens: tokens, batchSize: 6, sequenceLength: 9, seed: 3, sampling: sampling)
            resumed.restore(ranks[0].position)
            XCTAssertEqual(resumed.next().inputs, single.next().inputs, "\(sampling): world size 2 → 1")
        }
    }

    func testLoaderErrorsAndSplit() {
        XCTAssertThrowsError(try TokenLoader(tokens: [1, 2, 3], batchSize: 2, sequenceLength: 4, seed: 0)) { error in
            XCTAssertTrue("\(error)".contains("3 tokens"), "\(error)")
        }
        XCTAssertThrowsError(try TokenLoader(tokens: [1, 2, 3], batchSize: 0, sequenceLength: 4, seed: 0))
        let (train, validation) = TokenLoader.split((0..<100).map(Int32.init), validationFraction: 0.1)
        XCTAssertEqual(train.count, 90)
        XCTAssertEqual(validation, (90..<100).map(Int32.init))
    }
}

extension Substring {
    func trimmingPrefixSpaces() -> Substring { drop { $0 == " " } }
}

final class ShardBuilderTests: XCTestCase {
    /// A file's bytes reach the tokenizer as they are: a UTF-8 byte-order mark is text like any other (the
    /// `tokenizers` library keeps it too), and every document ends with the separator.
    func testByteOrderMarkIsKept() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-bom-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data([0xEF, 0xBB, 0xBF] + Array("hi".utf8)).write(to: URL(fileURLWithPath: folder + "/bom.txt"))
        let output = try ShardBuilder.build(
            inputs: [folder + "/bom.txt"], tokenizer: ByteTokenizer(), tokenizerName: "byte", separator: ByteTokenizer.endOfText,
            outputFolder: folder + "/out", validationFraction: 0)
        XCTAssertEqual(try TokenShard.read(output.trainPath), [0xEF, 0xBB, 0xBF, 104, 105, 256])
    }

    func testFolderOfTextBecomesTrainAndValidationShards() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-build-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: folder + "/texts/sub", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Data("hello".utf8).write(to: URL(fileURLWithPath: folder + "/texts/a.txt"))
        try Data("world!".utf8).write(to: URL(fileURLWithPath: folder + "/texts/sub/b.txt"))
        try Data("ignored".utf8).write(to: URL(fileURLWithPath: folder + "/texts/notes.md"))
        try Data("extra".utf8).write(to: URL(fileURLWithPath: folder + "/single.text"))
        let output = try ShardBuilder.build(
            inputs: [folder + "/texts", folder + "/single.text"], tokenizer: ByteTokenizer(), tokenizerName: "byte", separator: ByteTokenizer.endOfText,
            outputFolder: folder + "/out", validationFraction: 0.25)
        XCTAssertEqual(output.documents, 3)
        let expected = ByteTokenizer().encode("hello") + [256] + ByteTokenizer().encode("world!") + [256] + ByteTokenizer().encode("extra") + [256]
        XCTAssertEqual(output.trainTokens + output.validationTokens, expected.count)
        XCTAssertEqual(try TokenShard.read(output.trainPath) + TokenShard.read(output.validationPath), expected)
        XCTAssertEqual(output.validationTokens, Int((Double(expected.count) * 0.25).rounded()))
        XCTAssertFalse(output.reused)

        // The same files, tokenizer and split: the shards are reused, not rebuilt.
        func rebuild(_ fraction: Double = 0.25) throws -> ShardBuilder.Output {
            try ShardBuilder.build(
                inputs: [folder + "/texts", folder + "/single.text"], tokenizer: ByteTokenizer(), tokenizerName: "byte",
                separator: ByteTokenizer.endOfText, outputFolder: folder + "/out", validationFraction: fraction)
        }
        var again = try rebuild()
        XCTAssertTrue(again.reused)
        again.reused = false
        XCTAssertEqual(again, output)
        // A changed file, or another split, builds them again.
        try Data("hello there".utf8).write(to: URL(fileURLWithPath: folder + "/texts/a.txt"))
        let changed = try rebuild()
        XCTAssertFalse(changed.reused)
        XCTAssertEqual(changed.trainTokens + changed.validationTokens, expected.count + 6)
        XCTAssertFalse(try rebuild(0.5).reused)
        XCTAssertTrue(try rebuild(0.5).reused)
        XCTAssertThrowsError(try ShardBuilder.build(inputs: [folder + "/nope"], tokenizer: ByteTokenizer(), tokenizerName: "byte", separator: nil, outputFolder: folder + "/o", validationFraction: 0.1)) { error in
            XCTAssertEqual(error as? ShardBuilder.Failure, .missing(path: folder + "/nope"))
            XCTAssertTrue("\(error)".contains("does not exist"), "\(error)")
        }
        // Not text: said as such (not "cannot read"), and the manifest records real sizes and times.
        try Data([0xFF, 0xFE, 0x00, 0xC3]).write(to: URL(fileURLWithPath: folder + "/binary.txt"))
        XCTAssertThrowsError(try ShardBuilder.build(inputs: [folder + "/binary.txt"], tokenizer: ByteTokenizer(), tokenizerName: "byte", separator: nil, outputFolder: folder + "/b", validationFraction: 0.1)) { error in
            XCTAssertEqual(error as? ShardBuilder.Failure, .notText(path: folder + "/binary.txt"))
        }
        let manifest = try String(contentsOf: URL(fileURLWithPath: folder + "/out/manifest.json"), encoding: .utf8)
        XCTAssertFalse(manifest.contains("\"bytes\":-1") || manifest.contains("\"modified\":-1"), manifest)
        XCTAssertTrue(manifest.contains("\"bytes\":11"), manifest)
        try FileManager.default.createDirectory(atPath: folder + "/empty", withIntermediateDirectories: true)
        XCTAssertThrowsError(try ShardBuilder.build(inputs: [folder + "/empty"], tokenizer: ByteTokenizer(), tokenizerName: "byte", separator: nil, outputFolder: folder + "/o", validationFraction: 0.1)) { error in
            XCTAssertEqual(error as? ShardBuilder.Failure, .noInput(paths: [folder + "/empty"]))
        }
    }
}
