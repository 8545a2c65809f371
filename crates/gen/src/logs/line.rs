//! A container's output line before it is wrapped in its pod's envelope.

/// What the container printed and how a shipper classified it.
pub(super) struct Line {
    /// The text the program printed (may span lines, like a stack trace).
    pub(super) message: String,
    /// `log.level`.
    pub(super) level: &'static str,
    /// `stdout` or `stderr`.
    pub(super) stream: &'static str,
}
