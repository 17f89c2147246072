//! The library's lifecycle: `nvmlInit_v2` / `nvmlShutdown` reference counting (queries outside
//! it answer `NVML_ERROR_UNINITIALIZED`, as NVML does) and the fresh read of the state file
//! behind every query. A state file that cannot be used is reported on stderr once per distinct
//! problem, so a daemon polling every few seconds does not flood its log. The loader and the
//! reporter are passed in, so this is tested without files or a terminal.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::answers::{Code, NVML_ERROR_UNINITIALIZED, NVML_ERROR_UNKNOWN, NVML_SUCCESS};
use crate::state::{InitMode, ShimState, StateError};

/// One loaded copy of the shim.
#[derive(Debug, Default)]
pub struct Library {
    inits: AtomicU32,
    last_problem: Mutex<Option<String>>,
}

impl Library {
    /// A library nobody has initialised.
    pub const fn new() -> Self {
        Library {
            inits: AtomicU32::new(0),
            last_problem: Mutex::new(None),
        }
    }

    /// `nvmlInit_v2`: reads the state; a failure mode it names, or a state that cannot be read,
    /// fails initialisation.
    pub fn init(&self, state: Result<ShimState, StateError>, report: &mut dyn FnMut(&str)) -> Code {
        let state = match self.usable(state, report) {
            Ok(s) => s,
            Err(code) => return code,
        };
        let code = state.init.return_code();
        if state.init == InitMode::Ok {
            self.inits.fetch_add(1, Ordering::SeqCst);
        }
        code
    }

    /// `nvmlShutdown`: one `init` fewer; `NVML_ERROR_UNINITIALIZED` when there was none.
    pub fn shutdown(&self) -> Code {
        match self
            .inits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        {
            Ok(_) => NVML_SUCCESS,
            Err(_) => NVML_ERROR_UNINITIALIZED,
        }
    }

    /// The state a query answers from: `NVML_ERROR_UNINITIALIZED` outside init/shutdown,
    /// `NVML_ERROR_UNKNOWN` when the file cannot be used.
    pub fn state(
        &self,
        load: impl FnOnce() -> Result<ShimState, StateError>,
        report: &mut dyn FnMut(&str),
    ) -> Result<ShimState, Code> {
        if self.inits.load(Ordering::SeqCst) == 0 {
            return Err(NVML_ERROR_UNINITIALIZED);
        }
        self.usable(load(), report)
    }

    fn usable(&self, state: Result<ShimState, StateError>, report: &mut dyn FnMut(&str)) -> Result<ShimState, Code> {
        let mut last = self
            .last_problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match state {
            Ok(s) => {
                *last = None;
                Ok(s)
            }
            Err(e) => {
                let line = format!("llama-orch NVML shim: {e}");
                if last.as_deref() != Some(line.as_str()) {
                    report(&line);
                    *last = Some(line);
                }
                Err(NVML_ERROR_UNKNOWN)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn ok_state(init: InitMode) -> Result<ShimState, StateError> {
        ShimState::parse(Path::new("/s"), &format!(r#"{{"init": {}}}"#, serde_json::json!(init)))
    }

    fn broken() -> Result<ShimState, StateError> {
        ShimState::parse(Path::new("/tmp/s.json"), "{")
    }

    #[test]
    fn queries_need_an_init_and_stop_after_the_last_shutdown() {
        let lib = Library::new();
        let mut lines = Vec::new();
        let mut report = |l: &str| lines.push(l.to_string());
        assert_eq!(
            lib.state(|| ok_state(InitMode::Ok), &mut report),
            Err(NVML_ERROR_UNINITIALIZED)
        );
        assert_eq!(lib.init(ok_state(InitMode::Ok), &mut report), NVML_SUCCESS);
        assert_eq!(lib.init(ok_state(InitMode::Ok), &mut report), NVML_SUCCESS);
        assert!(lib.state(|| ok_state(InitMode::Ok), &mut report).is_ok());
        assert_eq!(lib.shutdown(), NVML_SUCCESS);
        assert!(lib.state(|| ok_state(InitMode::Ok), &mut report).is_ok());
        assert_eq!(lib.shutdown(), NVML_SUCCESS);
        assert_eq!(
            lib.state(|| ok_state(InitMode::Ok), &mut report),
            Err(NVML_ERROR_UNINITIALIZED)
        );
        assert_eq!(lib.shutdown(), NVML_ERROR_UNINITIALIZED);
        assert!(lines.is_empty());
    }

    #[test]
    fn a_failure_mode_fails_init_and_leaves_the_library_uninitialised() {
        let lib = Library::new();
        let mut report = |_: &str| {};
        assert_eq!(lib.init(ok_state(InitMode::DriverNotLoaded), &mut report), 9);
        assert_eq!(lib.init(ok_state(InitMode::NoPermission), &mut report), 4);
        assert_eq!(lib.init(ok_state(InitMode::LibRmVersionMismatch), &mut report), 18);
        assert_eq!(lib.shutdown(), NVML_ERROR_UNINITIALIZED);
    }

    #[test]
    fn a_broken_state_file_is_unknown_and_reported_once_per_problem() {
        let lib = Library::new();
        let mut lines = Vec::new();
        let mut report = |l: &str| lines.push(l.to_string());
        assert_eq!(lib.init(broken(), &mut report), NVML_ERROR_UNKNOWN);
        assert_eq!(lib.init(ok_state(InitMode::Ok), &mut report), NVML_SUCCESS);
        assert_eq!(lib.state(broken, &mut report), Err(NVML_ERROR_UNKNOWN));
        assert_eq!(lib.state(broken, &mut report), Err(NVML_ERROR_UNKNOWN));
        assert!(lib.state(|| ok_state(InitMode::Ok), &mut report).is_ok());
        assert_eq!(lib.state(broken, &mut report), Err(NVML_ERROR_UNKNOWN));
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].contains("LLORCH_NVML_SHIM_STATE") && lines[0].contains("/tmp/s.json"),
            "{lines:?}"
        );
        assert!(!lines[0].contains('\n'), "{lines:?}");
    }
}
