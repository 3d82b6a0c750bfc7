import ArgumentParser
import FoundationEssentials
import SLoPe

/// The training loop of `slope pretrain` for an encoder: progress lines, validation, checkpoints on schedule, on a
/// signal and on a non-finite loss, the summary.
extension PretrainCommand {
    func encoderLoop(_ trainer: EncoderTrainer, notes: [String: String], compute: ComputeDevice, folder: String, checkpointPath: String) throws {
        let options = trainer.options
        let metrics = try MetricsLog(path: folder + "/metrics.jsonl", keepingThrough: trainer.step)
        let logInterval = logEvery ?? max(1, options.steps / 50)
        let clock = ContinuousClock()
        let started = clock.now
        var window: (tokens: Int, seconds: Double, losses: [Double]) = (0, 0, [])
        var recent: [EncoderTrainer.StepResult] = []
        var lastRate = 0.0
        func save(_ reason: String) throws {
            try EncoderCheckpoint.save(trainer, notes: notes, to: checkpointPath)
            try AtomicFile.write(Data(LossPlot.svg(metrics.records, floor: nil, title: "slope pretrain \(model)").utf8), to: folder + "/loss.svg")
            say("\(reason): checkpoint at step \(trainer.step) written to \(checkpointPath)")
        }
        func validate(_ step: Int) throws -> EncoderTrainer.Validation {
            let validation = try trainer.validationLosses()
            try stopUnlessFinite(validation.loss, step: step, save: save)
            try metrics.append(MetricsRecord(
                step: step, validationLoss: validation.loss, maskedLanguageModelLoss: validation.maskedLanguageModelLoss,
                nextSentenceLoss: validation.nextSentenceLoss))
            return validation
        }
        installStopHandlers()
        var last: EncoderTrainer.Validation?
        let profile = StepProfile(compute, from: trainer.step, to: options.steps)
        while trainer.step < options.steps {
            let received = stopSignal.load(ordering: .relaxed)
            if received != 0 {
                ProgressLineOutput.end()
                try save("stopped by signal \(received)")
                say("resume with: slope pretrain --out \(folder) --resume")
                throw ExitCode(130)
            }
            let begin = clock.now
            let result = try trainingStep(trainer.trainStep, save: save)
            profile.stepDone(trainer.step)
            window.tokens += result.tokens
            window.seconds += seconds(clock.now - begin)
            window.losses.append(result.loss)
            recent = Array((recent + [result]).suffix(20))
            if result.startedAdapters {
                ProgressLineOutput.end()
                say("step \(result.step): lazy low-rank adapters attached (rank \(options.adapterRank)) for the last \(options.adapterSteps) steps")
            }
            if result.step % logInterval == 0 || result.step == options.steps || result.step == 1 {
                let rate = Double(window.tokens) / max(window.seconds, 1e-9)
                lastRate = rate
                let memory = compute.backend.memoryStatistics
                let loss = window.losses.reduce(0, +) / Double(window.losses.count)
                try metrics.append(MetricsRecord(
                    step: result.step, loss: loss, learningRate: result.learningRate, gradientNorm: result.gradientNorm, tokens: trainer.tokensSeen,
                    tokensPerSecond: rate, memoryBytes: memory.currentBytes, peakMemoryBytes: memory.peakBytes,
                    elapsedSeconds: seconds(clock.now - started), maskedLanguageModelLoss: result.maskedLanguageModelLoss,
                    nextSentenceLoss: result.nextSentenceLoss))
                let line = ProgressLine.render(
                    step: result.step, of: options.steps, loss: loss, learningRate: result.learningRate, tokensPerSecond: rate, mfu: nil,
                    memoryBytes: memory.currentBytes, remainingSeconds: Double(options.steps - result.step) * window.seconds / Double(window.losses.count))
                ProgressLineOutput.show(line)
                window = (0, 0, [])
            }
            if options.evaluationInterval > 0, result.step % options.evaluationInterval == 0 || result.step == options.steps {
                let validation = try validate(result.step)
                last = validation
                ProgressLineOutput.end()
                say("step \(result.step): validation loss \(formatted(validation.loss, digits: 4)) (masked LM \(formatted(validation.maskedLanguageModelLoss, digits: 4))"
                    + (validation.nextSentenceLoss.map { ", next sentence \(formatted($0, digits: 4))" } ?? "") + ")")
            }
            if checkpointEvery > 0, result.step % checkpointEvery == 0, result.step < options.steps { try save("periodic") }
        }
        ProgressLineOutput.end()
        profile.report()
        let validation = try last ?? validate(trainer.step)
        if finalCheckpoint {
            try save("done")
        } else {
            try AtomicFile.write(Data(LossPlot.svg(metrics.records, floor: nil, title: "slope pretrain \(model)").utf8), to: folder + "/loss.svg")
        }
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }
        let memory = compute.backend.memoryStatistics
        say("""

            Summary
              final train loss   \(formatted(mean(recent.map(\.loss)), digits: 4)) (masked LM \(formatted(mean(recent.map(\.maskedLanguageModelLoss)), digits: 4)); mean of the last \(recent.count) steps)
              validation loss    \(formatted(validation.loss, digits: 4)) (masked LM \(formatted(validation.maskedLanguageModelLoss, digits: 4))\(validation.nextSentenceLoss.map { ", next sentence \(formatted($0, digits: 4))" } ?? ""))
              throughput         \(formatCount(Int(lastRate))) tokens/s (real tokens, padding not counted)
              peak memory        \(byteCountText(memory.peakBytes))
              time               \(formatted(seconds(clock.now - started), digits: 1)) s for \(formatCount(trainer.tokensSeen)) tokens in total
              checkpoint         \(finalCheckpoint ? checkpointPath : "not written (--no-final-checkpoint)")
              metrics, plot      \(folder)/metrics.jsonl, \(folder)/loss.svg
            """ + (finalCheckpoint ? "\nNext: slope export \(checkpointPath) --out FOLDER (a transformers BertForPreTraining folder)   ·   "
                + "slope finetune --task sst2 --data GLUE/SST-2 --init \(checkpointPath) --out OUT" : ""))
    }
}
