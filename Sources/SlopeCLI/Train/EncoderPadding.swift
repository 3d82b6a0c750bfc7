import Foundation

/// `SLOPE_KEEP_PADDING=1` runs an encoder's padded positions through its blocks too (``EncoderModel/removesPadding``
/// off): the slower form, kept to measure what removing the padding saves.
enum EncoderPadding {
    static func removesPadding(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Bool {
        try !EnvironmentSwitch.isOn("SLOPE_KEEP_PADDING", default: false, off: "padding removed", on: "kept", environment)
    }
}
