//! The deterministic provisioning plan of one Engine (ORCH-3207): the commands its mode needs
//! before a replica can run, the policy flag that gates them, what finally runs (an image, an
//! executable, or an external URL), or why this host cannot do it. Pure: the same inputs give
//! the same plan, byte for byte; nothing here runs anything (`runner` does, when allowed).

use std::fmt;
use std::path::{Path, PathBuf};

use llorch_manifests::config::ProvisioningPolicy;
use llorch_manifests::engine::{PackageInstall, SourceBuild};
use llorch_manifests::{EngineSpec, Provisioning};

use super::os::OsRelease;

/// The CUDA switch every source build gets: llama-orch never builds a CPU-only engine.
pub const CUDA_FLAG: &str = "-DGGML_CUDA=ON";

/// One command of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Program (looked up on `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where it runs, when it matters.
    pub cwd: Option<PathBuf>,
}

impl Step {
    fn new(program: &str, args: &[&str]) -> Self {
        Step {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            cwd: None,
        }
    }
}

impl fmt::Display for Step {
    /// A copy-pasteable shell line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(cwd) = &self.cwd {
            write!(f, "cd {} && ", quote(&cwd.display().to_string()))?;
        }
        write!(f, "{}", quote(&self.program))?;
        for a in &self.args {
            write!(f, " {}", quote(a))?;
        }
        Ok(())
    }
}

/// Single-quotes `s` for a POSIX shell when it needs it.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// What finally serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// A container from this image.
    Image(String),
    /// A process from this executable.
    Executable(String),
    /// An engine someone else runs at this URL.
    Attach(String),
}

/// The policy flag that gates a plan's steps, and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// The config field, e.g. `provisioning.allowSourceBuilds`.
    pub flag: &'static str,
    /// Its value.
    pub allowed: bool,
}

/// The plan of one Engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnginePlan {
    /// Engine name.
    pub engine: String,
    /// Its mode.
    pub mode: Provisioning,
    /// Commands to run first, in order (empty: nothing to provision).
    pub steps: Vec<Step>,
    /// What gates `steps`.
    pub gate: Option<Gate>,
    /// What serves afterwards.
    pub run: RunAs,
    /// Why this host cannot follow the plan at all (e.g. `package` off Arch Linux).
    pub refusal: Option<String>,
    /// Facts worth showing (where things go, what is checked).
    pub notes: Vec<String>,
}

impl EnginePlan {
    /// True when its steps may run under the policy (and the host allows them at all).
    pub fn may_run(&self) -> bool {
        self.refusal.is_none() && self.gate.is_none_or(|g| g.allowed)
    }

    /// The plan as text lines (indented by the caller).
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("engine {} (provisioning: {})", self.engine, self.mode.as_str())];
        for n in &self.notes {
            out.push(format!("  {n}"));
        }
        if let Some(r) = &self.refusal {
            out.push(format!("  REFUSED: {r}"));
        }
        if !self.steps.is_empty() {
            match self.gate {
                Some(g) => out.push(format!(
                    "  steps (run only when config `{}` is true; it is {}):",
                    g.flag, g.allowed
                )),
                None => out.push("  steps:".into()),
            }
            for (i, s) in self.steps.iter().enumerate() {
                out.push(format!("    {}. {s}", i + 1));
            }
        }
        out.push(match &self.run {
            RunAs::Image(i) => format!("  runs: container image {i}"),
            RunAs::Executable(e) => format!("  runs: process {e}"),
            RunAs::Attach(u) => format!("  runs: nothing; attaches to {u} (never started or stopped by llama-orch)"),
        });
        out
    }
}

/// A path component made from a git ref (`release/b1` → `release-b1`).
fn path_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Where a `source` Engine is cloned: `<engine cache>/src/<name>-<ref>`.
pub fn source_dir(engine_cache: &Path, name: &str, git_ref: &str) -> PathBuf {
    engine_cache.join("src").join(format!("{name}-{}", path_safe(git_ref)))
}

/// The plan for Engine `name`.
pub fn engine_plan(
    name: &str,
    spec: &EngineSpec,
    policy: &ProvisioningPolicy,
    engine_cache: &Path,
    os: &OsRelease,
) -> EnginePlan {
    let mut plan = EnginePlan {
        engine: name.to_string(),
        mode: spec.provisioning,
        steps: Vec::new(),
        gate: None,
        run: RunAs::Image(String::new()),
        refusal: None,
        notes: Vec::new(),
    };
    match spec.provisioning {
        Provisioning::Container => {
            let image = spec.image.clone().unwrap_or_default();
            plan.notes.push(format!(
                "image {image}: used when present locally; otherwise {}",
                if policy.allow_image_pulls {
                    "pulled (config `provisioning.allowImagePulls: true`)"
                } else {
                    "refused (config `provisioning.allowImagePulls: false`): pull or build it yourself"
                }
            ));
            plan.run = RunAs::Image(image);
        }
        Provisioning::External => {
            plan.run = RunAs::Attach(spec.url.clone().unwrap_or_default());
            plan.notes.push(format!(
                "probed at {} every {} ms",
                spec.health.path, spec.health.interval_ms
            ));
        }
        Provisioning::Binary => {
            let exe = spec.executable.clone().unwrap_or_default();
            plan.notes.push(format!(
                "executable {exe}: must exist (absolute path, or a name on PATH) with its execute bit"
            ));
            plan.run = RunAs::Executable(exe);
        }
        Provisioning::Source => {
            if let Some(src) = &spec.source {
                source_plan(&mut plan, src, name, policy, engine_cache);
            }
        }
        Provisioning::Package => {
            if let Some(pkg) = &spec.package {
                package_plan(&mut plan, pkg, policy, engine_cache, os);
            }
        }
    }
    plan
}

/// Clone, configure with CUDA, build the target.
fn source_plan(plan: &mut EnginePlan, src: &SourceBuild, name: &str, policy: &ProvisioningPolicy, engine_cache: &Path) {
    if !llorch_manifests::validate::is_plain_file_name(&src.target) {
        // Validation refuses such a manifest; never let a path escape the build directory.
        plan.refusal = Some(format!("`source.target` `{}` is not a plain name", src.target));
        return;
    }
    let dir = source_dir(engine_cache, name, &src.git_ref);
    let build = dir.join("build");
    let (d, b) = (dir.display().to_string(), build.display().to_string());
    plan.steps.push(Step::new(
        "git",
        &["clone", "--depth", "1", "--branch", &src.git_ref, &src.repo, &d],
    ));
    let mut cmake = Step::new("cmake", &["-S", &d, "-B", &b, CUDA_FLAG]);
    cmake.args.extend(src.cmake_flags.iter().map(|f| {
        if f.starts_with('-') {
            f.clone()
        } else {
            format!("-D{f}")
        }
    }));
    plan.steps.push(cmake);
    plan.steps
        .push(Step::new("cmake", &["--build", &b, "--target", &src.target, "-j"]));
    plan.gate = Some(Gate {
        flag: "provisioning.allowSourceBuilds",
        allowed: policy.allow_source_builds,
    });
    plan.notes
        .push(format!("built into {b}; skipped when the binary is already there"));
    plan.run = RunAs::Executable(build.join("bin").join(&src.target).display().to_string());
}

/// `pacman -S`, or an AUR clone and `makepkg`; refused off Arch Linux.
fn package_plan(
    plan: &mut EnginePlan,
    pkg: &PackageInstall,
    policy: &ProvisioningPolicy,
    engine_cache: &Path,
    os: &OsRelease,
) {
    plan.gate = Some(Gate {
        flag: "provisioning.allowPackageInstalls",
        allowed: policy.allow_package_installs,
    });
    if !os.is_arch() {
        plan.refusal = Some(format!(
            "package provisioning uses pacman and works on Arch Linux only; this host is {}. Use \
             `provisioning: binary` with an installed engine, or `provisioning: container`",
            os.describe()
        ));
    }
    if pkg.aur {
        let dir = engine_cache.join("aur").join(&pkg.name);
        let url = format!("https://aur.archlinux.org/{}.git", pkg.name);
        plan.steps.push(Step::new(
            "git",
            &["clone", "--depth", "1", &url, &dir.display().to_string()],
        ));
        let mut makepkg = Step::new("makepkg", &["--syncdeps", "--install", "--needed", "--noconfirm"]);
        makepkg.cwd = Some(dir);
        plan.steps.push(makepkg);
        plan.notes
            .push("from the AUR: makepkg runs as a normal user with sudo rights, not as root".into());
    } else {
        plan.steps
            .push(Step::new("pacman", &["-S", "--needed", "--noconfirm", &pkg.name]));
    }
    plan.notes
        .push(format!("skipped when `{}` is already on PATH", pkg.binary));
    plan.run = RunAs::Executable(pkg.binary.clone());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn engine(yaml: serde_json::Value) -> EngineSpec {
        serde_json::from_value(yaml).unwrap()
    }

    fn debian() -> OsRelease {
        OsRelease::parse("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n")
    }

    #[test]
    fn a_source_plan_clones_configures_with_cuda_and_builds_the_target() {
        let spec = engine(serde_json::json!({
            "provisioning": "source", "version": "b4500",
            "source": {"repo": "https://github.com/ggml-org/llama.cpp", "ref": "b4500", "cmakeFlags": ["GGML_CUDA_F16=ON"]}
        }));
        let plan = engine_plan(
            "llama",
            &spec,
            &ProvisioningPolicy::default(),
            Path::new("/c"),
            &debian(),
        );
        let lines: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "git clone --depth 1 --branch b4500 https://github.com/ggml-org/llama.cpp /c/src/llama-b4500",
                "cmake -S /c/src/llama-b4500 -B /c/src/llama-b4500/build -DGGML_CUDA=ON -DGGML_CUDA_F16=ON",
                "cmake --build /c/src/llama-b4500/build --target llama-server -j",
            ]
        );
        assert_eq!(
            plan.run,
            RunAs::Executable("/c/src/llama-b4500/build/bin/llama-server".into())
        );
        assert_eq!(
            plan.gate,
            Some(Gate {
                flag: "provisioning.allowSourceBuilds",
                allowed: false
            })
        );
        assert!(!plan.may_run());
        assert_eq!(
            plan,
            engine_plan(
                "llama",
                &spec,
                &ProvisioningPolicy::default(),
                Path::new("/c"),
                &debian()
            ),
            "deterministic"
        );
    }

    #[test]
    fn a_package_plan_is_refused_off_arch_and_names_the_os() {
        let spec = engine(serde_json::json!({
            "provisioning": "package", "version": "1", "package": {"name": "llama.cpp-cuda", "aur": true}
        }));
        let policy = ProvisioningPolicy {
            allow_package_installs: true,
            ..Default::default()
        };
        let plan = engine_plan("llama", &spec, &policy, Path::new("/c"), &debian());
        let refusal = plan.refusal.clone().unwrap();
        assert!(refusal.contains("Arch Linux only"), "{refusal}");
        assert!(
            refusal.contains("Debian GNU/Linux 12 (bookworm) (ID=debian"),
            "{refusal}"
        );
        assert!(!plan.may_run());
        let arch = engine_plan("llama", &spec, &policy, Path::new("/c"), &OsRelease::parse("ID=arch"));
        assert!(arch.may_run());
        assert_eq!(
            arch.steps.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "git clone --depth 1 https://aur.archlinux.org/llama.cpp-cuda.git /c/aur/llama.cpp-cuda",
                "cd /c/aur/llama.cpp-cuda && makepkg --syncdeps --install --needed --noconfirm",
            ]
        );
        let official = engine(serde_json::json!({
            "provisioning": "package", "version": "1", "package": {"name": "llama.cpp", "binary": "llama-server"}
        }));
        let plan = engine_plan("l", &official, &policy, Path::new("/c"), &OsRelease::parse("ID=arch"));
        assert_eq!(plan.steps[0].to_string(), "pacman -S --needed --noconfirm llama.cpp");
        assert_eq!(plan.run, RunAs::Executable("llama-server".into()));
    }

    #[test]
    fn container_plans_say_whether_pulls_are_allowed_and_text_is_quoted_for_a_shell() {
        let spec = engine(serde_json::json!({"image": "img:dev", "version": "1"}));
        let off = engine_plan("e", &spec, &ProvisioningPolicy::default(), Path::new("/c"), &debian());
        assert!(off.lines().join("\n").contains("allowImagePulls: false"));
        assert!(off.steps.is_empty() && off.may_run());
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("/x/y-1.2"), "/x/y-1.2");
    }
}
