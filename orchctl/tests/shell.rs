//! `orchctl completion` and `orchctl explain`: neither needs a config or a daemon. The
//! completion scripts are checked by the shells themselves (`bash -n`; `zsh -n` and
//! `fish --no-execute` where those shells are installed); `explain`'s output against golden
//! files in `tests/golden/` (regenerate with `LLORCH_UPDATE_GOLDEN=1 cargo test -p orchctl
//! --test shell`).

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Home;

fn home() -> Home {
    // A config naming nothing that runs: these commands must not need it.
    Home::new("http://127.0.0.1:9")
}

/// Runs `shell` with `flag` over `script`; `None` when the shell is not installed.
fn shell_check(shell: &str, flag: &str, script: &str) -> Option<std::process::Output> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orchctl-completion");
    std::fs::write(&path, script).unwrap();
    match Command::new(shell).arg(flag).arg(&path).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("{shell}: {e}"),
    }
}

#[test]
fn completion_scripts_are_accepted_by_their_shells() {
    let home = home();
    let mut checked = Vec::new();
    for (shell, flag) in [("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")] {
        let ran = home.run_blocking(&["completion", shell]);
        assert_eq!(ran.code, 0, "{ran:?}");
        assert!(ran.out.contains("orchctl"), "{shell}: {}", ran.out);
        for sub in ["apply", "explain", "completion", "server"] {
            assert!(ran.out.contains(sub), "{shell} completes {sub}");
        }
        match shell_check(shell, flag, &ran.out) {
            Some(out) => {
                assert!(
                    out.status.success(),
                    "{shell} {flag} refuses the script: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                checked.push(shell);
            }
            // bash is required; zsh and fish are checked where installed.
            None if shell == "bash" => panic!("bash is not installed"),
            None => eprintln!("{shell} is not installed: its script is generated but not checked"),
        }
    }
    assert!(checked.contains(&"bash"), "{checked:?}");
}

#[test]
fn completion_works_with_a_broken_config() {
    let home = home();
    std::fs::write(home.config(), "bind: [not, an, address\n").unwrap();
    let ran = home.run_blocking(&["completion", "bash"]);
    assert_eq!(ran.code, 0, "{ran:?}");
}

#[test]
fn explain_prints_field_help_from_the_schemas() {
    let home = home();
    let update = std::env::var_os("LLORCH_UPDATE_GOLDEN").is_some();
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for path in [
        "pool.spec.scaling",
        "engine.spec.health",
        "model.spec",
        "pool.spec.queue.fullPolicy",
    ] {
        let ran = home.run_blocking(&["explain", path]);
        assert_eq!(ran.code, 0, "{path}: {ran:?}");
        let golden = golden_dir.join(format!("explain-{path}.txt"));
        if update {
            std::fs::write(&golden, &ran.out).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        assert!(
            want == ran.out,
            "{} differs from what explain prints now (LLORCH_UPDATE_GOLDEN=1 regenerates it):\n{}",
            golden.display(),
            similar::TextDiff::from_lines(&want, &ran.out).unified_diff()
        );
    }
}

#[test]
fn explain_names_the_valid_fields_when_a_path_is_wrong() {
    let ran = home().run_blocking(&["explain", "pool.spec.scalling"]);
    assert_eq!(ran.code, 1);
    assert_eq!(ran.out, "");
    assert!(
        ran.err.starts_with(
            "error: field `scalling` does not exist in `pool.spec`; its fields are: ctxSize, engine, gpus"
        ),
        "{}",
        ran.err
    );
    assert!(ran.err.contains("scaling, sessions"), "{}", ran.err);
}
