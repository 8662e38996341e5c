extension Duration {
    /// Whole milliseconds, clamped to `Int32` for librdkafka timeouts.
    var milliseconds: Int32 {
        Int32(clamping: components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000)
    }
}
