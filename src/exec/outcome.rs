//! What a finished plugin run means: a failed run becomes a typed error.

use super::ExecOutput;
use crate::error::{Error, ErrorKind};
use crate::plugin_error::PluginError;

/// How much of a failed plugin's stdout and stderr an error keeps.
const OUTPUT_LIMIT: usize = 4096;

fn truncate(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() <= OUTPUT_LIMIT {
        return s.into_owned();
    }
    let mut end = OUTPUT_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], bytes.len())
}

impl ExecOutput {
    /// The error for a plugin that exited unsuccessfully: its CNI error
    /// object if stdout holds one, else the exit status with both outputs.
    pub(crate) fn failure(&self) -> Error {
        let out = self;
        let stderr = truncate(&out.stderr);
        match PluginError::from_output(&out.stdout) {
            Some(pe) => Error::new(ErrorKind::Plugin {
                error: pe.with_stderr(stderr),
            }),
            None => Error::new(ErrorKind::PluginExit {
                status: out.status,
                stdout: truncate(&out.stdout),
                stderr,
            }),
        }
    }
}
