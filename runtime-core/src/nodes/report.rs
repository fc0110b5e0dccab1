//! [`ErrorReport`]: what a node running outside the runtime's own code (a Python worker
//! process, Python in Pyodide) reports when it raised. Every executor backend of Python
//! nodes words the failure the same way, so a traceback reads alike wherever the node ran.

/// A node failure as the worker reports it: the exception (`TypeName: message`), its
/// traceback (starting at the node's own code) and the phase it happened in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorReport {
    /// `TypeName: message`.
    pub message: String,
    /// The formatted traceback; may be empty.
    #[serde(default)]
    pub traceback: String,
    /// `import`, `initialize`, `process`, `flush` or `cleanup`.
    #[serde(default = "default_phase")]
    pub phase: String,
}

fn default_phase() -> String {
    "process".to_owned()
}

impl ErrorReport {
    /// A report of a failure in `phase`.
    pub fn new(phase: &str, message: impl Into<String>, traceback: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            traceback: traceback.into(),
            phase: phase.to_owned(),
        }
    }

    /// The report as it travels (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| self.message.clone().into_bytes())
    }

    /// Reads a report; anything that is not one becomes its text as the message.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_else(|_| Self {
            message: String::from_utf8_lossy(bytes).into_owned(),
            traceback: String::new(),
            phase: default_phase(),
        })
    }
}

impl std::fmt::Display for ErrorReport {
    /// `Python exception in process(): ValueError: ...` and the traceback.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = if self.message.is_empty() {
            "the node raised an exception"
        } else {
            &self.message
        };
        write!(f, "Python exception in {}(): {message}", self.phase)?;
        let traceback = self.traceback.trim_end();
        if !traceback.trim().is_empty() {
            write!(f, "\n{traceback}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_and_reads_as_the_node_failure() {
        let report = ErrorReport::new("flush", "ValueError: bad", "Traceback ...\n  line 3\n");
        let back = ErrorReport::from_bytes(&report.to_bytes());
        assert_eq!(back, report);
        assert_eq!(
            back.to_string(),
            "Python exception in flush(): ValueError: bad\nTraceback ...\n  line 3"
        );
    }

    #[test]
    fn text_that_is_not_a_report_is_kept_as_the_message() {
        let back = ErrorReport::from_bytes(b"segfault");
        assert_eq!(back.to_string(), "Python exception in process(): segfault");
    }
}
