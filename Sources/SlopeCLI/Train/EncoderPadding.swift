import ArgumentParser
import Foundation

/// `SLOPE_KEEP_PADDING=1` runs an encoder's padded positions through its blocks too (``EncoderModel/removesPadding``
/// off): the slower form, kept to measure what removing the padding saves.
enum EncoderPadding {
    static func removesPadding(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Bool {
        switch environment["SLOPE_KEEP_PADDING"] {
        case nil, "", "0": return true
        case "1": return false
        case let other?: throw ValidationError("SLOPE_KEEP_PADDING must be 0 (padding removed, the default) or 1 (kept), not '\(other)'")
        }
    }
}
