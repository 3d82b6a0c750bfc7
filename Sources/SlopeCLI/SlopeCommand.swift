import ArgumentParser

@main
struct SlopeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slope",
        abstract: "SLoPe: 2:4-sparse LLM pretraining with double-pruned backward passes and lazy low-rank adapters.",
        subcommands: [PretrainCommand.self, FinetuneCommand.self, LaunchCommand.self, EvalCommand.self, GenerateCommand.self, ServeCommand.self, ExportCommand.self, ImportCommand.self, BenchCommand.self, DoctorCommand.self]
    )

    /// ArgumentParser's entry point, except that an error in a data-parallel job's rank other than 0 is printed
    /// with the rank, so a launch's interleaved output says which process complained.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let rank = consoleRank.load(ordering: .relaxed)
            guard rank > 0, exitCode(for: error) != .success else { exit(withError: error) }
            printError(fullMessage(for: error))  // "rank N: Error: …"
            exit(withError: ExitCode(exitCode(for: error).rawValue))
        }
    }
}
