import ArgumentParser

@main
struct SlopeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slope",
        abstract: "SLoPe: 2:4-sparse LLM pretraining with double-pruned backward passes and lazy low-rank adapters.",
        subcommands: [PretrainCommand.self, EvalCommand.self, GenerateCommand.self, ExportCommand.self, ImportCommand.self, BenchCommand.self, DoctorCommand.self]
    )
}
