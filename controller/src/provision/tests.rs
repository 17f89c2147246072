//! The Engine check per mode against the fake runtime: images present, missing with pulls off
//! (the exact advice), pulled in the background with pulls on; executables; source and
//! package plans gated by policy and by the OS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::runtime::fake::FakeRuntime;

fn engine(v: serde_json::Value) -> EngineSpec {
    serde_json::from_value(v).unwrap()
}

fn provisioner(policy: ProvisioningPolicy, cache: &Path, os: &str) -> Provisioner {
    Provisioner::new(policy, Arc::new(Notify::new())).with_host(cache.to_path_buf(), OsRelease::parse(os))
}

const DEBIAN: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";

#[tokio::test]
async fn a_missing_image_with_pulls_off_says_neither_holds_and_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    rt.remove_image("x:1");
    let p = provisioner(ProvisioningPolicy::default(), dir.path(), DEBIAN);
    let c = p
        .check(&rt, "e", &engine(serde_json::json!({"image": "x:1", "version": "1"})))
        .await;
    let NotReady { reason, message: msg } = c.verdict.unwrap_err();
    assert_eq!(reason, Reason::ImageMissing);
    assert!(
        msg.starts_with(
            "image `x:1` is not present in fake and pulls are off (config `provisioning.allowImagePulls: false`): \
             run `fake pull x:1` or enable pulls"
        ),
        "{msg}"
    );
}

#[tokio::test]
async fn with_pulls_on_a_missing_image_is_pulled_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    rt.remove_image("x:1");
    let wake = Arc::new(Notify::new());
    let policy = ProvisioningPolicy {
        allow_image_pulls: true,
        ..Default::default()
    };
    let p = Provisioner::new(policy, wake.clone()).with_host(dir.path().into(), OsRelease::parse(DEBIAN));
    let spec = engine(serde_json::json!({"image": "x:1", "version": "1"}));
    let pulling = p.check(&rt, "e", &spec).await.verdict.unwrap_err();
    assert_eq!(pulling.reason, Reason::ImagePulling);
    tokio::time::timeout(Duration::from_secs(5), wake.notified())
        .await
        .unwrap();
    assert!(p.check(&rt, "e", &spec).await.verdict.is_ok(), "pulled");
}

#[tokio::test]
async fn binary_engines_need_their_executable() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let allowed = ProvisioningPolicy {
        allow_binaries: true,
        ..ProvisioningPolicy::default()
    };
    let p = provisioner(allowed, dir.path(), DEBIAN);
    let ok = engine(serde_json::json!({"provisioning": "binary", "executable": "sh", "version": "1"}));
    assert!(p.check(&rt, "e", &ok).await.verdict.unwrap().contains("executable /"));
    let missing =
        engine(serde_json::json!({"provisioning": "binary", "executable": "/no/llama-server", "version": "1"}));
    let c = p.check(&rt, "e", &missing).await;
    let why = c.verdict.unwrap_err();
    assert_eq!(why.reason, Reason::ExecutableMissing);
    assert!(why.message.contains("`/no/llama-server` does not exist"));
}

#[tokio::test]
async fn binary_engines_run_only_what_the_config_allows() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let sh = engine(serde_json::json!({"provisioning": "binary", "executable": "sh", "version": "1"}));
    let refused = provisioner(ProvisioningPolicy::default(), dir.path(), DEBIAN)
        .check(&rt, "e", &sh)
        .await
        .verdict
        .unwrap_err();
    assert_eq!(refused.reason, Reason::ProvisioningNotAllowed);
    assert!(
        refused.message.contains("provisioning.allowBinaries") && refused.message.contains("allowedExecutables"),
        "{}",
        refused.message
    );
    // Listed (through a symlink: both sides are resolved), it runs; another program still does not.
    let real_sh = crate::runtime::process::resolve::which("sh").unwrap();
    let link = dir.path().join("my-sh");
    std::os::unix::fs::symlink(&real_sh, &link).unwrap();
    let listed = ProvisioningPolicy {
        allowed_executables: vec![link],
        ..ProvisioningPolicy::default()
    };
    let p = provisioner(listed, dir.path(), DEBIAN);
    assert!(p.check(&rt, "e", &sh).await.verdict.is_ok());
    let cat = engine(serde_json::json!({"provisioning": "binary", "executable": "cat", "version": "1"}));
    assert!(p.check(&rt, "e", &cat).await.verdict.is_err());
}

fn source_engine() -> EngineSpec {
    engine(serde_json::json!({
        "provisioning": "source", "version": "b1",
        "source": {"repo": "https://github.com/ggml-org/llama.cpp", "ref": "b1"}
    }))
}

#[tokio::test]
async fn a_source_engine_without_permission_names_the_plan_and_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let p = provisioner(ProvisioningPolicy::default(), dir.path(), DEBIAN);
    let c = p.check(&rt, "llama", &source_engine()).await;
    let NotReady { reason, message: msg } = c.verdict.clone().unwrap_err();
    assert_eq!(reason, Reason::ProvisioningNotAllowed);
    assert!(
        msg.contains("config `provisioning.allowSourceBuilds` is false"),
        "{msg}"
    );
    assert!(
        msg.contains("1. git clone --depth 1 --branch b1 https://github.com/ggml-org/llama.cpp"),
        "{msg}"
    );
    assert!(c.launch_as.is_none());
}

#[tokio::test]
async fn a_source_engine_whose_binary_exists_runs_as_a_binary() {
    let dir = tempfile::tempdir().unwrap();
    let bin = plan::source_dir(dir.path(), "llama", "b1").join("build/bin/llama-server");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::write(&bin, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let p = provisioner(ProvisioningPolicy::default(), dir.path(), DEBIAN);
    let c = p.check(&rt, "llama", &source_engine()).await;
    let launch = c.launch_as.expect("launchable");
    assert_eq!(launch.provisioning, Provisioning::Binary);
    assert_eq!(launch.executable.as_deref(), Some(bin.to_str().unwrap()));
    assert!(launch.source.is_none());
}

#[tokio::test]
async fn a_package_engine_off_arch_is_refused_even_when_installs_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(FakeRuntime::new());
    let policy = ProvisioningPolicy {
        allow_package_installs: true,
        ..Default::default()
    };
    let p = provisioner(policy, dir.path(), DEBIAN);
    let spec = engine(serde_json::json!({
        "provisioning": "package", "version": "1", "package": {"name": "llama.cpp-cuda", "binary": "llorch-no-such-server"}
    }));
    let c = p.check(&rt, "llama", &spec).await;
    let why = c.verdict.unwrap_err();
    assert_eq!(why.reason, Reason::ProvisioningUnsupported);
    assert!(why.message.contains("this host is Debian GNU/Linux 12 (bookworm)"));
}
