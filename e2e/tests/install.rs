//! The README's "Install as a service", followed into a scratch root: `scripts/install.sh`
//! with the README's own arguments (read from the README, plus `--root <tmp>` and
//! `--binaries` pointing at the built binaries), for the system and the user unit; then
//! systemd's own judgement of what it installed, `systemd-analyze verify`, which must be
//! silent. The checks are shown to bite: a copy with a misspelled key and one whose binary is
//! missing both fail them. Reruns are idempotent, the config is never overwritten, the stop
//! timeout follows `shutdownGraceMs`, `--dry-run` writes nothing and `--uninstall` removes
//! the binaries and unit but keeps the config.
//!
//! `systemd-analyze` comes from Debian's `systemd` package (`scripts/test.sh` installs it);
//! without it the test fails with what to install. No daemon and no container runtime are
//! needed: the unit is checked, not started (no systemd runs as PID 1 here).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use llama_orch_e2e::daemon::bin;
use llama_orch_e2e::monitoring::repo_file;
use llorch_manifests::config::Config;

/// A home directory for the user install. Under `--root` nothing outside the root is touched,
/// so it need not exist.
const FAKE_HOME: &str = "/home/llorch-e2e";

fn systemd_analyze() -> PathBuf {
    let path = std::env::var_os("LLORCH_SYSTEMD_ANALYZE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/systemd-analyze"));
    assert!(
        path.exists(),
        "{} is missing: install Debian's systemd package (`apt-get install --no-install-recommends systemd`; \
         scripts/test.sh does), or set LLORCH_SYSTEMD_ANALYZE",
        path.display()
    );
    path
}

fn text(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The arguments of each `scripts/install.sh` line in the README's "Install as a service"
/// code blocks (`sudo` dropped, the comment cut).
fn readme_install_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let section = readme
        .split("\n## Install as a service\n")
        .nth(1)
        .expect("README.md has an `## Install as a service` section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut in_code = false;
    let mut commands = Vec::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let command = line.split('#').next().unwrap().trim();
        let command = command.strip_prefix("sudo ").unwrap_or(command);
        if let Some(args) = command.strip_prefix("scripts/install.sh").filter(|_| in_code) {
            commands.push(args.split_whitespace().map(str::to_string).collect());
        }
    }
    commands
}

/// The README's install line whose arguments contain all of `want` and none of `unwanted`.
fn readme_command(want: &[&str], unwanted: &[&str]) -> Vec<String> {
    let all = readme_install_commands();
    all.iter()
        .find(|args| {
            want.iter().all(|w| args.iter().any(|a| a == w)) && unwanted.iter().all(|u| !args.iter().any(|a| a == u))
        })
        .unwrap_or_else(|| {
            panic!(
                "README's install section has no `scripts/install.sh {}` line: {all:?}",
                want.join(" ")
            )
        })
        .clone()
}

/// `bash scripts/install.sh <args> --root <root> --binaries <target/debug>`, as `HOME`.
fn install(args: &[String], root: &Path, home: &str) -> Output {
    let binaries = bin("llama-orchd").parent().unwrap().to_path_buf();
    bin("orchctl");
    let out = Command::new("bash")
        .arg(repo_file("scripts/install.sh"))
        .args(args)
        .arg("--root")
        .arg(root)
        .arg("--binaries")
        .arg(&binaries)
        .env("HOME", home)
        .output()
        .expect("run bash");
    assert!(out.status.success(), "install.sh {args:?}: {}", text(&out));
    out
}

/// The host's system units (targets the default dependencies need) copied into the root, so
/// `verify --root` resolves them there.
fn copy_host_units(root: &Path) {
    let lib = root.join("usr/lib/systemd");
    std::fs::create_dir_all(&lib).unwrap();
    let out = Command::new("cp")
        .args(["-a", "/usr/lib/systemd/system"])
        .arg(&lib)
        .output()
        .unwrap();
    assert!(out.status.success(), "copy the host's units: {}", text(&out));
}

/// `systemd-analyze verify --root=<root> <unit>`: `Err` with its words unless it exits 0 and
/// says nothing (it only warns, exit 0, about an unknown key or a bad value).
fn verify_system(root: &Path, unit: &Path) -> Result<(), String> {
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(unit)
        .output()
        .unwrap();
    judge(&out)
}

/// `systemd-analyze --user verify <unit>`. systemd 252 cannot combine `--user` with `--root`,
/// so the unit is checked as a copy whose `ExecStart` points into the scratch root.
fn verify_user(root: &Path, unit: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(unit).unwrap();
    let check = tempfile::tempdir().unwrap();
    let rooted = text.replace("\nExecStart=/", &format!("\nExecStart={}/", root.display()));
    std::fs::write(check.path().join("llama-orchd.service"), rooted).unwrap();
    let runtime = check.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let out = Command::new(systemd_analyze())
        .args(["--user", "verify"])
        .arg(check.path().join("llama-orchd.service"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("HOME", check.path())
        .output()
        .unwrap();
    judge(&out)
}

fn judge(out: &Output) -> Result<(), String> {
    if out.status.success() && out.stdout.is_empty() && out.stderr.is_empty() {
        Ok(())
    } else {
        Err(text(out))
    }
}

/// A copy of `unit` in the same folder as `name`, changed by `edit`.
fn broken_copy(unit: &Path, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let copy = unit.with_file_name(name);
    std::fs::write(&copy, edit(&std::fs::read_to_string(unit).unwrap())).unwrap();
    copy
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn has_line(path: &Path, line: &str) {
    assert!(
        lines(path).iter().any(|l| l == line),
        "{} lacks the line `{line}`:\n{}",
        path.display(),
        lines(path).join("\n")
    );
}

/// Every line of an install's stdout says nothing changed.
fn all_unchanged(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        assert!(
            line.starts_with("unchanged: ") || line.starts_with("kept: ") || line.starts_with("files only"),
            "a rerun changed something: `{line}`\n{stdout}"
        );
    }
}

#[test]
fn the_readmes_system_install_into_a_scratch_root_passes_systemd_analyze_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let args = readme_command(&["--system"], &["--uninstall", "--build-only"]);
    install(&args, root, "/root");

    for b in ["llama-orchd", "orchctl"] {
        let installed = root.join("usr/local/bin").join(b);
        assert!(
            std::fs::read(&installed).unwrap() == std::fs::read(bin(b)).unwrap(),
            "{} is not the built {b}",
            installed.display()
        );
        let out = Command::new(&installed).arg("--version").output().unwrap();
        assert!(out.status.success(), "{b} --version: {}", text(&out));
    }
    let unit = root.join("etc/systemd/system/llama-orchd.service");
    has_line(
        &unit,
        "ExecStart=/usr/local/bin/llama-orchd --config /etc/llama-orch/config.yaml",
    );
    has_line(&unit, "Environment=LLAMA_ORCH_HOME=/var/lib/llama-orch");
    has_line(&unit, "User=llama-orch");
    has_line(&unit, "StateDirectory=llama-orch");
    has_line(&unit, "KillSignal=SIGTERM");
    has_line(&unit, "Restart=on-failure");
    // The default grace is 10 s: the stop timeout leaves it plus a margin.
    has_line(&unit, "TimeoutStopSec=30s");
    assert!(
        !lines(&unit)
            .iter()
            .any(|l| l.starts_with("PrivateDevices=") || l.starts_with("DeviceAllow=")),
        "nothing may hide /dev/nvidia* from NVML"
    );
    // The starter config is all comments: the daemon reads it as the defaults.
    let config = root.join("etc/llama-orch/config.yaml");
    let starter = std::fs::read_to_string(&config).unwrap();
    assert_eq!(Config::from_yaml(&starter).unwrap(), Config::default(), "{starter}");

    copy_host_units(root);
    verify_system(root, &unit).unwrap_or_else(|e| panic!("systemd-analyze verify of the installed unit: {e}"));
    // The check bites: a misspelled key, and a binary that is not there.
    let misspelled = broken_copy(&unit, "llama-orchd-misspelled.service", |t| {
        t.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    });
    let err = verify_system(root, &misspelled).expect_err("a misspelled key must fail the check");
    assert!(err.contains("NoNewPrivilege"), "{err}");
    let missing = broken_copy(&unit, "llama-orchd-missing.service", |t| {
        t.replace("/usr/local/bin/llama-orchd", "/usr/local/bin/llama-orchd-gone")
    });
    let err = verify_system(root, &missing).expect_err("a missing binary must fail the check");
    assert!(err.contains("llama-orchd-gone"), "{err}");
    std::fs::remove_file(misspelled).unwrap();
    std::fs::remove_file(missing).unwrap();

    // Rerun: nothing changes. A config edited by hand is kept, and its grace reaches the unit.
    all_unchanged(&install(&args, root, "/root"));
    std::fs::write(&config, format!("{starter}shutdownGraceMs: 60000\n")).unwrap();
    let out = install(&args, root, "/root");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("updated: {}", unit.display())),
        "{}",
        text(&out)
    );
    has_line(&unit, "TimeoutStopSec=75s");
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .ends_with("shutdownGraceMs: 60000\n")
    );
    verify_system(root, &unit).unwrap_or_else(|e| panic!("verify after the rerun: {e}"));

    // Uninstall: binaries and unit go, the config stays.
    install(&readme_command(&["--system", "--uninstall"], &[]), root, "/root");
    assert!(!unit.exists() && !root.join("usr/local/bin/llama-orchd").exists());
    assert!(!root.join("usr/local/bin/orchctl").exists());
    assert!(config.exists(), "the config survives an uninstall");
}

#[test]
fn the_readmes_user_install_into_a_scratch_root_passes_systemd_analyze_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let args = readme_command(&["--user"], &["--uninstall"]);
    install(&args, root, FAKE_HOME);

    let home = root.join(FAKE_HOME.trim_start_matches('/'));
    let unit = home.join(".config/systemd/user/llama-orchd.service");
    has_line(&unit, &format!("ExecStart={FAKE_HOME}/.local/bin/llama-orchd"));
    has_line(&unit, "Environment=LLAMA_ORCH_HOME=%h/.llama-orch");
    has_line(&unit, "TimeoutStopSec=30s");
    has_line(&unit, "WantedBy=default.target");
    assert!(
        !lines(&unit).iter().any(|l| l.starts_with("User=")),
        "a user unit runs as its user"
    );
    assert!(home.join(".local/bin/orchctl").exists());
    let starter = std::fs::read_to_string(home.join(".llama-orch/config.yaml")).unwrap();
    assert_eq!(Config::from_yaml(&starter).unwrap(), Config::default(), "{starter}");

    verify_user(root, &unit).unwrap_or_else(|e| panic!("systemd-analyze --user verify: {e}"));
    let misspelled = broken_copy(&unit, "misspelled.service", |t| {
        t.replace("KillMode=process", "KillMode=proces")
    });
    let err = verify_user(root, &misspelled).expect_err("a bad value must fail the check");
    assert!(err.contains("proces"), "{err}");
    std::fs::remove_file(misspelled).unwrap();
    std::fs::remove_file(home.join(".local/bin/llama-orchd")).unwrap();
    let err = verify_user(root, &unit).expect_err("a missing binary must fail the check");
    assert!(err.contains("llama-orchd"), "{err}");

    // The rerun puts the binary back and changes nothing else; uninstall keeps the config.
    let out = install(&args, root, FAKE_HOME);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("created: ") && stdout.contains("/.local/bin/llama-orchd"),
        "{stdout}"
    );
    all_unchanged(&install(&args, root, FAKE_HOME));
    install(&readme_command(&["--user", "--uninstall"], &[]), root, FAKE_HOME);
    assert!(!unit.exists() && !home.join(".local/bin/llama-orchd").exists());
    assert!(home.join(".llama-orch/config.yaml").exists());
}

#[test]
fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let args: Vec<String> = ["--system", "--dry-run"].map(String::from).to_vec();
    let out = install(&args, &root, "/root");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would write: ") && stdout.contains("etc/systemd/system/llama-orchd.service"),
        "{stdout}"
    );
    assert!(!root.exists(), "a dry run created {}", root.display());
}
