//! The CNI operations: a leaf module every other one may import.

use std::fmt;

/// A CNI operation (the `CNI_COMMAND` a plugin is run with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// `ADD`: attach a container to a network.
    Add,
    /// `DEL`: detach a container from a network.
    Del,
    /// `CHECK`: verify an attachment is as expected.
    Check,
    /// `GC`: clean up resources of attachments that no longer exist.
    Gc,
    /// `STATUS`: ask whether the plugin is ready.
    Status,
    /// `VERSION`: ask which spec versions the plugin supports.
    Version,
}

impl Op {
    /// The value of `CNI_COMMAND` for this operation, e.g. `"ADD"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Del => "DEL",
            Op::Check => "CHECK",
            Op::Gc => "GC",
            Op::Status => "STATUS",
            Op::Version => "VERSION",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
