//! Runs a plan's steps one after the other, each command's stdout and stderr appended to one
//! log file, stopping at the first failure. Only called when the policy allows the plan; it
//! never decides whether a plan may run.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use super::plan::Step;

/// Why a plan stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The log's folder or a step's working directory could not be created.
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The log could not be opened for appending.
    #[error("cannot open the log {}: {source}", log.display())]
    OpenLog {
        /// The log.
        log: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A step's program could not be started.
    #[error("step {number} (`{step}`) could not start: {source}")]
    Start {
        /// 1-based.
        number: usize,
        /// The command line.
        step: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A step exited unsuccessfully.
    #[error("step {number} (`{step}`) failed with {status}; see {}", log.display())]
    Failed {
        /// 1-based.
        number: usize,
        /// The command line.
        step: String,
        /// How it ended.
        status: ExitStatus,
        /// Where its output is.
        log: PathBuf,
    },
}

/// Runs `steps` in order with their output in `log`; `on_step` hears which one starts. The error
/// names the step, its exit status and the log.
pub async fn run_steps(steps: &[Step], log: &Path, on_step: impl Fn(usize, &Step)) -> Result<(), RunError> {
    let create = |dir: &Path| {
        std::fs::create_dir_all(dir).map_err(|source| RunError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })
    };
    if let Some(dir) = log.parent() {
        create(dir)?;
    }
    for (i, step) in steps.iter().enumerate() {
        on_step(i, step);
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| RunError::OpenLog {
                    log: log.to_path_buf(),
                    source,
                })
        };
        let (out, err) = (open()?, open()?);
        if let Some(cwd) = &step.cwd {
            create(cwd)?;
        }
        let mut cmd = tokio::process::Command::new(&step.program);
        cmd.args(&step.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        if let Some(cwd) = &step.cwd {
            cmd.current_dir(cwd);
        }
        let status = cmd.status().await.map_err(|source| RunError::Start {
            number: i + 1,
            step: step.to_string(),
            source,
        })?;
        if !status.success() {
            return Err(RunError::Failed {
                number: i + 1,
                step: step.to_string(),
                status,
                log: log.to_path_buf(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn step(program: &str, args: &[&str]) -> Step {
        Step {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            cwd: None,
        }
    }

    #[tokio::test]
    async fn steps_run_in_order_and_the_first_failure_stops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/build.log");
        let steps = [
            step("sh", &["-c", "echo one"]),
            step("sh", &["-c", "echo two; exit 4"]),
            step("sh", &["-c", "echo three"]),
        ];
        let err = run_steps(&steps, &log, |_, _| {}).await.unwrap_err().to_string();
        assert!(
            err.starts_with("step 2 (`sh -c 'echo two; exit 4'`) failed with exit status: 4"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");
    }
}
