//! The doctor's checks per declared Engine: what each provisioning mode needs on this host —
//! the image (container), an answer at the URL (external), the executable (binary), git,
//! cmake, a C++ compiler and nvcc (source), pacman/makepkg on Arch Linux (package) — and the
//! manifest warnings `orchctl plan` shows too ([`llorch_manifests::warnings`]).

use std::path::Path;
use std::time::Duration;

use llorch_controller::provision::os::OsRelease;
use llorch_controller::provision::plan::{RunAs, engine_plan};
use llorch_controller::runtime::ContainerRuntime;
use llorch_controller::runtime::docker::DockerRuntime;
use llorch_controller::runtime::process::resolve::which;
use llorch_manifests::config::{Config, GpuConfig};
use llorch_manifests::parse::Located;
use llorch_manifests::{AnyObject, Engine, EngineSpec, Provisioning};

use super::{Check, Level, check, short};
use llorch_controller::manifest_dir::ManifestDir;

/// Appends one or more checks per Engine declared in `manifests_dir`.
pub(super) async fn checks(
    config: &Config,
    manifests_dir: &Path,
    engine_cache: &Path,
    runtime: Option<&DockerRuntime>,
    checks: &mut Vec<Check>,
) {
    let dir = match ManifestDir::read(manifests_dir) {
        Ok(d) => d,
        Err(e) => {
            checks.push(check("manifests", Level::Warn, format!("{e:#}"), None));
            return;
        }
    };
    let objects: Vec<_> = dir.objects().cloned().collect();
    checks.extend(warning_checks(&objects));
    let engines: Vec<_> = dir
        .objects()
        .filter_map(|l| match &l.object {
            AnyObject::Engine(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    if engines.is_empty() {
        checks.push(check(
            "engines",
            Level::Ok,
            format!(
                "no Engine declared in {}: no mode-specific tools needed",
                manifests_dir.display()
            ),
            None,
        ));
    }
    let os = OsRelease::read();
    for e in engines {
        let name = format!("engine/{} ({})", e.name(), e.spec.provisioning.as_str());
        if config.gpus == GpuConfig::None && e.spec.provisioning != Provisioning::External {
            checks.push(check(
                &name,
                Level::Fail,
                "cannot run here: config `gpus: none` runs only Pools on `external` Engines; its Pools are blocked",
                Some("run it on a host with GPUs and declare an `external` Engine here that points at it"),
            ));
            continue;
        }
        match e.spec.provisioning {
            Provisioning::Container => checks.push(image_check(&name, &e.spec, config, runtime).await),
            Provisioning::External => checks.push(url_check(&name, &e.spec).await),
            Provisioning::Binary => checks.push(tool(
                &name,
                e.spec.executable.as_deref().unwrap_or_default(),
                "install the engine, or set `spec.executable` to its absolute path",
            )),
            Provisioning::Source => checks.extend(build_checks(&name, &e, config, engine_cache, &os)),
            Provisioning::Package => checks.extend(package_checks(&name, &e.spec, &os)),
        }
    }
}

/// `t` on PATH (or at its path), or a failure with `fix`.
fn tool(name: &str, t: &str, fix: &str) -> Check {
    match which(t) {
        Ok(p) => check(name, Level::Ok, format!("{t}: {}", p.display()), None),
        Err(why) => check(name, Level::Fail, short(&why), Some(fix)),
    }
}

/// A container Engine: its image is present, or may be pulled.
async fn image_check(name: &str, spec: &EngineSpec, config: &Config, runtime: Option<&DockerRuntime>) -> Check {
    let image = spec.image.clone().unwrap_or_default();
    match runtime {
        Some(rt) => match rt.image_exists(&image).await {
            Ok(true) => check(name, Level::Ok, format!("image {image} is present"), None),
            Ok(false) if config.provisioning.allow_image_pulls => check(
                name,
                Level::Ok,
                format!("image {image} is not present; it will be pulled (allowImagePulls: true)"),
                None,
            ),
            Ok(false) => {
                let kind = rt.identity().kind;
                check(
                    name,
                    Level::Fail,
                    format!(
                        "image {image} is not present and pulls are off (config `provisioning.allowImagePulls: false`)"
                    ),
                    Some(&format!("{kind} pull {image}")),
                )
            }
            Err(err) => check(name, Level::Warn, format!("cannot check image {image}: {err}"), None),
        },
        None => check(name, Level::Fail, "needs a container runtime (see above)", None),
    }
}

/// An external Engine: its health URL answers.
async fn url_check(name: &str, spec: &EngineSpec) -> Check {
    let url = spec.url.clone().unwrap_or_default();
    let probe = format!("{}{}", url.trim_end_matches('/'), spec.health.path);
    let answer = reqwest::Client::new()
        .get(&probe)
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => check(name, Level::Ok, format!("{probe} answers {}", r.status()), None),
        Ok(r) => check(
            name,
            Level::Warn,
            format!("{probe} answers {}", r.status()),
            Some("check the engine's own logs"),
        ),
        Err(err) => check(
            name,
            Level::Warn,
            format!("{probe} does not answer: {err}"),
            Some("start the engine at that URL (llama-orch never starts external engines)"),
        ),
    }
}

/// A source Engine: already built, or the tools a CUDA build needs and whether builds are
/// allowed.
fn build_checks(name: &str, e: &Engine, config: &Config, engine_cache: &Path, os: &OsRelease) -> Vec<Check> {
    let mut checks = Vec::new();
    let plan = engine_plan(e.name(), &e.spec, &config.provisioning, engine_cache, os);
    if let RunAs::Executable(exe) = &plan.run
        && which(exe).is_ok()
    {
        return vec![check(name, Level::Ok, format!("already built: {exe}"), None)];
    }
    checks.push(tool(name, "git", "apt install git"));
    checks.push(tool(name, "cmake", "apt install cmake"));
    let cxx = ["c++", "g++", "clang++"].iter().find_map(|c| which(c).ok());
    checks.push(match cxx {
        Some(p) => check(name, Level::Ok, format!("C++ compiler: {}", p.display()), None),
        None => check(
            name,
            Level::Fail,
            "no C++ compiler (c++, g++ or clang++) on PATH",
            Some("apt install build-essential"),
        ),
    });
    let nvcc = which("nvcc").or_else(|_| which("/usr/local/cuda/bin/nvcc"));
    checks.push(match nvcc {
        Ok(p) => check(name, Level::Ok, format!("nvcc: {}", p.display()), None),
        Err(_) => check(
            name,
            Level::Fail,
            "no nvcc on PATH or in /usr/local/cuda/bin: a CUDA build needs the CUDA toolkit",
            Some("apt install nvidia-cuda-toolkit   # or NVIDIA's CUDA repository; then put nvcc on PATH"),
        ),
    });
    if !config.provisioning.allow_source_builds {
        checks.push(check(
            name,
            Level::Warn,
            "config `provisioning.allowSourceBuilds` is false: llama-orch will not build it (`orchctl plan` shows the steps)",
            Some("set `provisioning: {allowSourceBuilds: true}` in config.yaml, or run the plan yourself"),
        ));
    }
    checks
}

/// A package Engine: its binary is installed, or this is Arch Linux with pacman (and makepkg
/// for the AUR).
fn package_checks(name: &str, spec: &EngineSpec, os: &OsRelease) -> Vec<Check> {
    let mut checks = Vec::new();
    let binary = spec.package.as_ref().map(|p| p.binary.clone()).unwrap_or_default();
    if which(&binary).is_ok() {
        checks.push(tool(name, &binary, ""));
    } else if !os.is_arch() {
        checks.push(check(
            name,
            Level::Fail,
            format!(
                "package provisioning needs Arch Linux (pacman); this host is {}",
                os.describe()
            ),
            Some("use `provisioning: binary` with an installed llama-server, or `provisioning: container`"),
        ));
    } else {
        checks.push(tool(name, "pacman", "this is not a working Arch Linux install"));
        if spec.package.as_ref().is_some_and(|p| p.aur) {
            checks.push(tool(name, "makepkg", "pacman -S --needed base-devel"));
        }
    }
    checks
}

/// One `warn` per manifest warning about the declared objects (e.g. a llama.cpp Engine that
/// offloads no layer to its Pool's GPUs).
fn warning_checks(objects: &[Located]) -> Vec<Check> {
    llorch_manifests::warnings::for_set(objects)
        .into_iter()
        .map(|w| check(w.code(), Level::Warn, w.to_string(), Some(&w.fix())))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_llamacpp_engine_without_gpu_layers_is_a_warning_with_its_fix() {
        let yaml = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: llama}\n\
                    spec: {image: 'img:1', version: '1'}\n---\n\
                    apiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: chat}\n\
                    spec: {engine: llama, model: m, replicas: 1}\n";
        let objects = llorch_manifests::parse_file("stack.yaml", yaml.as_bytes()).unwrap();
        let found = warning_checks(&objects);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].check.as_str(), found[0].level), ("gpu-offload", Level::Warn));
        assert!(
            found[0]
                .found
                .starts_with("engine `llama` (pool `chat`) offloads no layers to the GPU"),
            "{found:?}"
        );
        assert_eq!(
            found[0].fix.as_deref(),
            Some("in engine/llama: `extraArgs: [--n-gpu-layers, \"999\"]`")
        );
        let fixed = yaml.replace("version: '1'}", "version: '1', extraArgs: [-ngl, '99']}");
        let objects = llorch_manifests::parse_file("stack.yaml", fixed.as_bytes()).unwrap();
        assert_eq!(warning_checks(&objects), vec![]);
    }
}
