//! Runs a plan's steps one after the other, each command's stdout and stderr appended to one
//! log file, stopping at the first failure. Only called when the policy allows the plan.

use std::path::Path;
use std::process::Stdio;

use super::plan::Step;

/// Runs `steps` in order with their output in `log`; `on_step` hears which one starts. The error
/// names the step, its exit status and the log.
pub async fn run_steps(steps: &[Step], log: &Path, on_step: impl Fn(usize, &Step)) -> Result<(), String> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for (i, step) in steps.iter().enumerate() {
        on_step(i, step);
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| format!("cannot open the log {}: {e}", log.display()))
        };
        let (out, err) = (open()?, open()?);
        if let Some(cwd) = &step.cwd {
            std::fs::create_dir_all(cwd).map_err(|e| format!("cannot create {}: {e}", cwd.display()))?;
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
        let status = cmd
            .status()
            .await
            .map_err(|e| format!("step {} (`{step}`) could not start: {e}", i + 1))?;
        if !status.success() {
            return Err(format!(
                "step {} (`{step}`) failed with {status}; see {}",
                i + 1,
                log.display()
            ));
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
        let err = run_steps(&steps, &log, |_, _| {}).await.unwrap_err();
        assert!(
            err.starts_with("step 2 (`sh -c 'echo two; exit 4'`) failed with exit status: 4"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");
    }
}
