import FoundationEssentials
import SLoPe
import SlopeData
import XCTest

/// Sizes from files and configurations are untrusted: a forged or damaged number gets a typed error naming the
/// file, the field and the value — never an arithmetic trap or an allocation of terabytes.
final class UntrustedSizeTests: XCTestCase {
    let cpu = CPUBackend()

    func temporaryPath(_ name: String) -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slope-untrusted-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: folder) }
        return folder + "/" + name
    }

    /// A safetensors file with the given JSON header and `dataBytes` bytes after it.
    func safetensors(_ header: String, dataBytes: Int) throws -> String {
        let path = temporaryPath("forged.safetensors")
        let json = Array(header.utf8)
        var bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json
        bytes += [UInt8](repeating: 0, count: dataBytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func assertCorrupt(_ path: String, mentions words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensors.read(path), file: file, line: line) { error in
            guard case SafeTensors.Failure.corrupt = error else { return XCTFail("\(error)", file: file, line: line) }
            for word in words { XCTAssertTrue("\(error)".contains(word), "'\(word)' in: \(error)", file: file, line: line) }
        }
    }

    func testSafeTensorsHeadersWithImpossibleNumbers() throws {
        // A shape whose element count overflows (2^40 × 2^40).
        assertCorrupt(try safetensors(#"{"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}}"#, dataBytes: 16),
                      mentions: ["tensor w", "[1099511627776, 1099511627776]", "too large"])
        // A negative dimension.
        assertCorrupt(try safetensors(#"{"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#, dataBytes: 16), mentions: ["[-4]"])
        // Offsets near Int.max: their sum with the header overflows.
        assertCorrupt(try safetensors(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[9223372036854775800,9223372036854775807]}}"#, dataBytes: 16),
                      mentions: ["needs bytes"])
        // dtype × shape disagrees with the byte range (reported as that, not as a range problem).
        assertCorrupt(try safetensors(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}"#, dataBytes: 16),
                      mentions: ["F32 [2, 2]", "16 bytes", "hold 8"])
        // Offsets out of order, and not a pair.
        assertCorrupt(try safetensors(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#, dataBytes: 16), mentions: ["needs bytes"])
        assertCorrupt(try safetensors(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, dataBytes: 16), mentions: ["not [begin, end]"])
        // A well-formed one still reads.
        let good = try SafeTensors.read(try safetensors(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, dataBytes: 16))
        XCTAssertEqual(good.tensors["w"]?.shape, [2, 2])
    }

    func testTokenShardCountsPastTheFile() throws {
        let path = temporaryPath("forged.tokens")
        try TokenShard.write([1, 2, 3], to: path)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        for (count, _) in [(UInt64(Int64.max), "Int.max"), (UInt64.max, "UInt64.max"), (UInt64(1) << 62, "2^62 (× 2 bytes overflows)")] {
            withUnsafeBytes(of: count.littleEndian) { bytes.replaceSubrange(16..<24, with: $0) }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try TokenShard.read(path)) { error in
                guard case TokenShard.Failure.truncated(_, _, let available) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(available, 6)
                XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
            }
        }
    }

    func testModelConfigurationsThatCannotBeCountedOrHeld() throws {
        var huge = try ModelConfiguration.named("tiny")
        huge.hiddenSize = 1 << 62
        huge.heads = 1
        huge.keyValueHeads = 1
        XCTAssertThrowsError(try huge.validate()) { error in
            XCTAssertTrue("\(error)".contains("more parameters than can be counted"), "\(error)")
        }
        // Countable but far beyond any machine: refused before a byte is allocated, with both sizes.
        for change in [{ (c: inout ModelConfiguration) in c.contextLength = 1_000_000_000_000_000 },
                       { (c: inout ModelConfiguration) in c.hiddenSize = 1_000_000; c.intermediateSize = 4_000_000 },
                       { (c: inout ModelConfiguration) in c.layers = 1_000_000_000 },
                       { (c: inout ModelConfiguration) in c.vocabularySize = 1_000_000_000_000 }] {
            var configuration = try ModelConfiguration.named("tiny")
            change(&configuration)
            let before = cpu.memoryStatistics.currentBytes
            XCTAssertThrowsError(try TransformerModel(configuration: configuration, backend: cpu, seed: 0)) { error in
                guard case TensorError.exceedsMemory(_, _, let capacity, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(capacity, self.cpu.memoryCapacity)
                XCTAssertTrue("\(error)".contains("in all"), "\(error)")
            }
            XCTAssertEqual(cpu.memoryStatistics.currentBytes, before, "nothing allocated")
        }
    }

    /// A host tensor past the machine's memory, or of a size that cannot be counted, is an error — not a trap in the
    /// allocator or the kernel's OOM killer.
    func testHostAllocationsBeyondTheMachineAreErrors() throws {
        XCTAssertThrowsError(try cpu.zeros([1 << 40], dtype: .float32)) { error in
            guard case TensorError.exceedsMemory(_, let needed, _, .cpu) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(needed, 1 << 42)
        }
        XCTAssertThrowsError(try cpu.zeros([1 << 40, 1 << 40], dtype: .float32)) { error in
            XCTAssertTrue("\(error)".contains("too large to count"), "\(error)")
        }
        XCTAssertEqual(try cpu.zeros([3, 5], dtype: .float32).count, 15)
    }

    /// Training memory is checked before the first step: a batch whose logits alone exceed the machine.
    func testTrainingThatCannotFitIsRefusedUpFront() throws {
        let configuration = try ModelConfiguration.named("tiny")
        let model = try TransformerModel(configuration: configuration, backend: cpu, seed: 0)
        let tokens = [Int32](repeating: 1, count: 4096)
        let options = TrainingOptions(steps: 1, batchSize: 1 << 30, sequenceLength: 64, sparsity: nil, adapterFraction: 0)
        XCTAssertThrowsError(try Trainer(model: model, options: options, trainTokens: tokens, validationTokens: tokens)) { error in
            guard case TensorError.exceedsMemory(let what, _, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(what.contains("logits"), what)
        }
        let wide = TrainingOptions(steps: 1, batchSize: 2, sequenceLength: 64, adapterRank: 100_000_000)
        XCTAssertThrowsError(try Trainer(model: model, options: wide, trainTokens: tokens, validationTokens: tokens)) { error in
            XCTAssertTrue("\(error)".contains("adapter rank 100000000 exceeds the hidden size 128"), "\(error)")
        }
    }

    /// A small checkpoint whose saved state claims a huge model is refused before the model is built.
    func testCheckpointStateThatDoesNotMatchItsTensors() throws {
        let configuration = try ModelConfiguration.named("tiny")
        let tokens = [Int32]((0..<4096).map { Int32($0 % 200) })
        let run = try Trainer(model: TransformerModel(configuration: configuration, backend: cpu, seed: 0),
                              options: TrainingOptions(steps: 1, batchSize: 2, sequenceLength: 32, adapterFraction: 0),
                              trainTokens: tokens, validationTokens: tokens)
        let path = temporaryPath("checkpoint.safetensors")
        try Checkpoint.save(run, to: path)
        let file = try SafeTensors.read(path)
        var state = try Checkpoint.state(of: file)
        state.model.layers = 100_000
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let records = try file.tensors.keys.sorted().map { try SafeTensors.record($0, file.tensor($0, backend: cpu), backend: cpu) }
        let forgedPath = temporaryPath("forged.safetensors")
        try SafeTensors.write(records, metadata: file.metadata.merging(
            ["slope.state": String(decoding: try encoder.encode(state), as: UTF8.self)]) { $1 }, to: forgedPath)
        let forged = try SafeTensors.read(forgedPath)
        let before = cpu.memoryStatistics.currentBytes
        XCTAssertThrowsError(try Checkpoint.loadModel(forged, backend: cpu)) { error in
            guard case Checkpoint.Failure.notACheckpoint(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("but the file holds"), reason)
        }
        XCTAssertEqual(cpu.memoryStatistics.currentBytes, before, "no model was built")
    }
}
