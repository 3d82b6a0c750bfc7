import ArgumentParser
import Foundation

/// A 0/1 environment switch of the commands (the forms kept to measure what a default saves): unset or empty is
/// the default, and any value but 0 or 1 is refused, naming both.
enum EnvironmentSwitch {
    static func isOn(
        _ name: String, default: Bool, off: String, on: String, _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Bool {
        switch environment[name] {
        case nil, "": return `default`
        case "0": return false
        case "1": return true
        case let other?:
            throw ValidationError("\(name) must be 0 (\(off)\(`default` ? "" : ", the default")) or 1 (\(on)\(`default` ? ", the default" : "")), not '\(other)'")
        }
    }
}
