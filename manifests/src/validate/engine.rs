//! An Engine's own checks: its image, version, arguments (their placeholders), environment
//! and its provisioning mode with the one field that mode needs. Which Pools use it is
//! [`check_set`](super::check_set)'s.

use super::{PLACEHOLDERS, Problem, check_placeholders, is_plain_file_name, problem};
use crate::{EngineSpec, Provisioning};

/// Checks an Engine's spec on its own: image, version, arguments, environment and how it is
/// provisioned.
pub(super) fn check_engine(spec: &EngineSpec, out: &mut Vec<Problem>) {
    check_provisioning(spec, out);
    match spec.image.as_deref() {
        None if spec.provisioning == Provisioning::Container => out.push(problem(
            "spec.image",
            "missing image",
            "set `image:` to a local image, e.g. `llama-orch/mock-engine:dev`",
        )),
        Some(i) if i.trim().is_empty() || i.chars().any(char::is_whitespace) => out.push(problem(
            "spec.image",
            format!("`{i}` is not an image reference"),
            "use `name:tag`, without spaces",
        )),
        _ => {}
    }
    if spec.version.trim().is_empty() {
        out.push(problem(
            "spec.version",
            "version label is empty",
            "set it to the engine's version, e.g. `b4500`",
        ));
    }
    if spec.port == 0 {
        out.push(problem(
            "spec.port",
            "port 0 is not a port",
            "set the port the engine listens on inside the container",
        ));
    }
    for (field, list) in [("spec.args", &spec.args), ("spec.extraArgs", &spec.extra_args)] {
        for (i, arg) in list.iter().enumerate() {
            if let Err(e) = check_placeholders(arg) {
                out.push(problem(
                    &format!("{field}[{i}]"),
                    e.to_string(),
                    format!("placeholders are {{{}}}", PLACEHOLDERS.join("}, {")),
                ));
            }
        }
    }
    for key in spec.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            out.push(problem(
                &format!("spec.env.{key}"),
                format!("`{key}` is not a valid variable name"),
                "use letters, digits and `_`",
            ));
        }
    }
    // What `orchctl get -o yaml` shows in place of a secret: applied back, it would become
    // the value.
    for (key, value) in &spec.env {
        if matches!(value, crate::secrets::EnvValue::Literal(v) if v == crate::secrets::REDACTED) {
            out.push(problem(
                &format!("spec.env.{key}"),
                format!(
                    "the value is `{}`, a placeholder for a secret that was not shown",
                    crate::secrets::REDACTED
                ),
                "write the real value, or `valueFrom: {env: NAME}` / `{file: PATH}`",
            ));
        }
    }
    let h = &spec.health;
    if !h.path.starts_with('/') {
        out.push(problem(
            "spec.health.path",
            format!("`{}` does not start with `/`", h.path),
            "e.g. `/health`",
        ));
    }
    for (field, value, min) in [
        ("spec.health.intervalMs", h.interval_ms, 50),
        ("spec.health.timeoutMs", h.timeout_ms, 50),
        ("spec.health.startupTimeoutMs", h.startup_timeout_ms, 1_000),
    ] {
        if value < min {
            out.push(problem(
                field,
                format!("{value} is below the minimum of {min}"),
                format!("use at least {min}"),
            ));
        }
    }
    if h.failure_threshold == 0 {
        out.push(problem(
            "spec.health.failureThreshold",
            "must be at least 1",
            "use 3 unless you know better",
        ));
    }
}

/// Each provisioning mode needs its own field, and only that one.
fn check_provisioning(spec: &EngineSpec, out: &mut Vec<Problem>) {
    let mode = spec.provisioning;
    let present = [
        ("spec.url", spec.url.is_some(), Provisioning::External),
        ("spec.executable", spec.executable.is_some(), Provisioning::Binary),
        ("spec.source", spec.source.is_some(), Provisioning::Source),
        ("spec.package", spec.package.is_some(), Provisioning::Package),
    ];
    for (field, is_set, owner) in present {
        if is_set && owner != mode {
            out.push(problem(
                field,
                format!(
                    "only used with `provisioning: {}`, not `{}`",
                    owner.as_str(),
                    mode.as_str()
                ),
                format!("remove it, or set `provisioning: {}`", owner.as_str()),
            ));
        }
        if !is_set && owner == mode {
            let example = match owner {
                Provisioning::External => "`url: http://127.0.0.1:8081`",
                Provisioning::Binary => "`executable: /usr/local/bin/llama-server`",
                Provisioning::Source => "`source: {repo: https://github.com/ggml-org/llama.cpp, ref: b4500}`",
                _ => "`package: {name: llama.cpp-cuda, aur: true}`",
            };
            out.push(problem(
                field,
                format!("`provisioning: {}` needs it", mode.as_str()),
                format!("set {example}"),
            ));
        }
    }
    if mode != Provisioning::Container && spec.image.is_some() {
        out.push(problem(
            "spec.image",
            format!("only used with `provisioning: container`, not `{}`", mode.as_str()),
            "remove it, or set `provisioning: container`",
        ));
    }
    if let Some(url) = &spec.url {
        let ok = (url.starts_with("http://") || url.starts_with("https://")) && !url.contains(char::is_whitespace);
        if !ok {
            out.push(problem(
                "spec.url",
                format!("`{url}` is not an http(s) URL"),
                "e.g. `http://127.0.0.1:8081`",
            ));
        }
    }
    if spec.executable.as_deref().is_some_and(|e| e.trim().is_empty()) {
        out.push(problem(
            "spec.executable",
            "is empty",
            "name the engine binary, e.g. `llama-server`",
        ));
    }
    if let Some(src) = &spec.source
        && !is_plain_file_name(&src.target)
    {
        out.push(problem(
            "spec.source.target",
            format!("`{}` is not a plain name", src.target),
            "name the cmake target, e.g. `llama-server`: the binary is run from the build directory, never from \
             another path",
        ));
    }
    if let Some(src) = &spec.source
        && (src.repo.trim().is_empty() || src.git_ref.trim().is_empty())
    {
        {
            out.push(problem(
                "spec.source",
                "`repo` and `ref` must not be empty",
                "pin a tag or commit",
            ));
        }
    }
}
