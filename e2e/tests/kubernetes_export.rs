//! `orchctl export kubernetes` (docs/kubernetes.md), end to end with the real binaries:
//! - every object exported from `examples/` (the golden files in `examples/kubernetes/`) and
//!   from the e2e fixture (the mock stack every e2e test runs, plus an external Engine by
//!   address and by name, a demand-sized Pool, a hidden environment value, a Hub model with a
//!   digest) validates offline against Kubernetes' OpenAPI schemas (1.35 and 1.37, strict) with
//!   the pinned `kubernetes-validate`, and KubeAI Models against the vendored KubeAI CRD;
//! - the round trip: the export with `--with-gateway` runs on real Docker as a cluster would run
//!   it — one container per engine replica from the Deployment's pod spec on a network where
//!   the Service's name resolves to them (Docker's network aliases stand in for cluster DNS),
//!   and llama-orchd from the gateway's pod spec (its user, read-only root, dropped
//!   capabilities, its ConfigMap laid out as the kubelet mounts it, the token from the
//!   Secret's variable). Nothing of the export is edited. Tasks then stream through it with
//!   `orchctl run` and SSE, and an overload gets 429 with retry advice;
//! - the model init container's script, taken from the export, downloads and checks a digest
//!   (and refuses a wrong one) with the host's `sh`, `curl` and `sha256sum`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use llama_orch_e2e::daemon::bin;
use llama_orch_e2e::python::venv_named;
use llama_orch_e2e::sse::{TaskClient, tokens};
use llama_orch_e2e::{ContainerGuard, docker_socket, mock_image, run_cli, runtime_cli, unique};
use serde_json::{Value, json};

// A test crate root resolves `mod` beside itself; this keeps the file with its test.
#[path = "kubernetes_export/fixtures.rs"]
mod fixtures;

use fixtures::{fixtures, sha256_hex};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tiny_model() -> PathBuf {
    repo().join("examples/models/tiny.gguf")
}

/// The venv with the pinned kubernetes-validate (scripts/test.sh installs it).
fn validator() -> PathBuf {
    let python = venv_named("venv-k8s").join("bin/python");
    let ok = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m; assert m.version('kubernetes-validate') == '1.37.0'",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} lacks kubernetes-validate 1.37.0; run scripts/test.sh (or: python3 -m venv <venv> && <venv>/bin/pip install kubernetes-validate==1.37.0)",
        python.display()
    );
    python
}

/// Runs `k8s_validate.py` over `files`; panics with its report when anything fails.
fn validate(files: &[PathBuf]) -> String {
    let mut cmd = Command::new(validator());
    cmd.arg(repo().join("e2e/python/k8s_validate.py"))
        .args(["--version", "1.35.0", "--version", "1.37.0"])
        .arg("--crd")
        .arg(repo().join("deploy/kubernetes/kubeai/kubeai.org_models.yaml"))
        .args(files);
    let out = cmd.output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "validation failed:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// A home whose config uses real GPUs (export refuses a simulated inventory), for orchctl.
fn config(dir: &Path) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, format!("manifestsDir: {}\n", dir.join("none").display())).unwrap();
    path
}

fn orchctl(config: &Path, args: &[&str]) -> Output {
    Command::new(bin("orchctl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("LLAMA_ORCH_URL")
        .output()
        .unwrap()
}

fn export(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["export", "kubernetes"];
    all.extend_from_slice(args);
    let out = orchctl(config, &all);
    assert!(
        out.status.success(),
        "orchctl {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn exports_of_the_examples_and_the_e2e_fixtures_validate_against_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "the golden files: {files:?}");
    let fixture_files = fixtures(dir.path());
    let f: Vec<String> = fixture_files
        .iter()
        .flat_map(|p| ["-f".to_string(), p.display().to_string()])
        .collect();
    let args: Vec<&str> = f.iter().map(String::as_str).collect();
    for (name, extra) in [
        ("fixtures.yaml", vec![]),
        (
            "fixtures-gateway.yaml",
            vec![
                "--with-gateway",
                "-n",
                "e2e",
                "--gpu-product",
                "NVIDIA-GeForce-RTX-4090",
            ],
        ),
    ] {
        let mut all = args.clone();
        all.extend(extra);
        let path = dir.path().join(name);
        std::fs::write(&path, export(&config, &all)).unwrap();
        files.push(path);
    }
    let report = validate(&files);
    // Every kind export makes was checked, against both versions.
    for kind in [
        "PersistentVolumeClaim/llorch-model-chat-model",
        "Deployment/llorch-chat",
        "Service/llorch-lab-ip",
        "EndpointSlice/llorch-lab-ip-1",
        "Service/llorch-lab-dns",
        "Deployment/llorch-coder",
        "ConfigMap/llorch-gateway",
        "Deployment/llorch-gateway",
        "Model/",
    ] {
        assert!(report.contains(kind), "{kind} not validated:\n{report}");
    }
    // And the validator does fail: a Deployment with a field Kubernetes does not have.
    let bad = dir.path().join("bad.yaml");
    let golden = std::fs::read_to_string(repo().join("examples/kubernetes/chat.yaml")).unwrap();
    std::fs::write(
        &bad,
        golden.replacen("  replicas: 2\n", "  replicas: 2\n  replica: 2\n", 1),
    )
    .unwrap();
    let out = Command::new(validator())
        .arg(repo().join("e2e/python/k8s_validate.py"))
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("'replica' was unexpected"),
        "{text}"
    );
}

/// One YAML document per object.
fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .skip(1)
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in the export"))
}

fn docker(args: &[&str]) -> String {
    run_cli("docker", &docker_socket(), args).unwrap()
}

/// Removes a Docker network on drop.
struct NetworkGuard(String);

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        let _ = run_cli("docker", &docker_socket(), &["network", "rm", &self.0]);
    }
}

/// The files a ConfigMap volume with `items` shows in its mount: each key at its path.
fn lay_out_config_map(config_map: &Value, volume: &Value, into: &Path) {
    let data = config_map["data"].as_object().unwrap();
    for item in volume["configMap"]["items"].as_array().unwrap() {
        let path = into.join(item["path"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data[item["key"].as_str().unwrap()].as_str().unwrap()).unwrap();
    }
    // Readable by the gateway's user, as the kubelet's default mode (0644) makes them.
    Command::new("chmod").args(["-R", "a+rX"]).arg(into).status().unwrap();
}

/// `docker run` for the engine replicas of Deployment `deployment`, on `network`, reachable as
/// its Service's name.
fn run_engine_pods(deployment: &Value, service: &Value, network: &str, label: &str) -> Vec<String> {
    let pod = &deployment["spec"]["template"];
    // The Service selects the Deployment's pods.
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &pod["metadata"]["labels"][k], v,
            "the Service's selector {k} matches the pods"
        );
    }
    let engine = &pod["spec"]["containers"][0];
    let alias = service["metadata"]["name"].as_str().unwrap();
    let model_mount = engine["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let args: Vec<&str> = engine["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let model_arg = args[args.iter().position(|a| *a == "--model").unwrap() + 1];
    assert!(model_arg.starts_with(model_mount), "{model_arg} is on the model volume");
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    (0..replicas)
        .map(|_| {
            let mount = format!("{}:{model_arg}:ro", tiny_model().display());
            let mut run = vec![
                "run",
                "-d",
                "--label",
                label,
                "--network",
                network,
                "--network-alias",
                alias,
                "-v",
                &mount,
            ];
            let image = engine["image"].as_str().unwrap();
            assert_eq!(image, mock_image(), "the fixture's engine image");
            run.push(image);
            run.extend(&args);
            docker(&run)
        })
        .collect()
}

/// The gateway image this test builds from the debug llama-orchd.
const GATEWAY_IMAGE: &str = "llama-orch/llama-orchd:e2e";

/// `scripts/build-gateway-image.sh` with this build's llama-orchd.
fn build_gateway_image() {
    let out = Command::new("bash")
        .arg(repo().join("scripts/build-gateway-image.sh"))
        .arg("--binary")
        .arg(bin("llama-orchd"))
        .args(["--tag", GATEWAY_IMAGE, "--docker", &docker_socket()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-gateway-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_gateway_export_serves_tasks_against_the_exported_engines_on_docker() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let stack = fixtures(dir.path()).remove(0);
    build_gateway_image();
    let yaml = export(
        &config,
        &[
            "-f",
            &stack.display().to_string(),
            "--with-gateway",
            "--gateway-image",
            GATEWAY_IMAGE,
        ],
    );
    let objects = documents(&yaml);
    let label_value = unique("k8s-export");
    let label = format!("llorch-e2e={label_value}");
    let _containers = ContainerGuard::new("docker", &docker_socket(), "llorch-e2e", &label_value);
    let network = docker(&["network", "create", &label_value]);
    let _network = NetworkGuard(network.clone());

    // The engine "pods", reachable as the Service's name.
    let engines = run_engine_pods(
        find(&objects, "Deployment", "llorch-chat"),
        find(&objects, "Service", "llorch-chat"),
        &network,
        &label,
    );
    assert_eq!(engines.len(), 2);

    // The gateway's pod, as its spec says.
    let gateway = find(&objects, "Deployment", "llorch-gateway");
    let pod = &gateway["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let volumes = pod["volumes"].as_array().unwrap();
    let config_volume = volumes.iter().find(|v| v["configMap"].is_object()).unwrap();
    let mounted = dir.path().join("etc-llama-orch");
    lay_out_config_map(find(&objects, "ConfigMap", "llorch-gateway"), config_volume, &mounted);
    let mount_of = |volume: &str| {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let config_mount = format!("{}:{}:ro", mounted.display(), mount_of("config"));
    // An emptyDir: an empty directory anyone may write, as the kubelet makes it.
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    Command::new("chmod").arg("0777").arg(&state).status().unwrap();
    let state_mount = format!("{}:{}", state.display(), mount_of("state"));
    let token = sha256_hex(label_value.as_bytes());
    let mut env: Vec<String> = Vec::new();
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        match e["value"].as_str() {
            Some(v) => env.push(format!("{name}={v}")),
            None => {
                assert_eq!(e["valueFrom"]["secretKeyRef"]["name"], "llorch-gateway-token");
                env.push(format!("{name}={token}"));
            }
        }
    }
    let user = pod["securityContext"]["runAsUser"].as_u64().unwrap().to_string();
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    let publish = format!("127.0.0.1::{port}");
    let mut run: Vec<&str> = vec![
        "run",
        "-d",
        "--label",
        &label,
        "--network",
        &network,
        "--user",
        &user,
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-p",
        &publish,
        "-v",
        &config_mount,
        "-v",
        &state_mount,
    ];
    for e in &env {
        run.extend(["-e", e.as_str()]);
    }
    // The image the pod names, as scripts/build-gateway-image.sh builds it (from this build's
    // binary), run with the pod's own arguments.
    assert_eq!(c["image"], GATEWAY_IMAGE);
    run.push(GATEWAY_IMAGE);
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    run.extend(args.iter().map(String::as_str));
    let gateway_id = docker(&run);
    let logs = || {
        let out = runtime_cli("docker", &docker_socket())
            .args(["logs", &gateway_id])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let published = run_cli(
        "docker",
        &docker_socket(),
        &["port", &gateway_id, &format!("{port}/tcp")],
    )
    .unwrap_or_else(|e| panic!("the gateway is not running: {e}\n{}", logs()));
    let url = format!("http://{}", published.lines().next().unwrap());

    // Ready, through the real orchctl against the gateway.
    let client = Command::new(bin("orchctl"))
        .args([
            "--server",
            &url,
            "--token",
            &token,
            "wait",
            "pool/chat",
            "--for=condition=Ready",
            "--timeout=90s",
        ])
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "pool/chat not Ready behind the gateway: {}\n{}",
        String::from_utf8_lossy(&client.stderr),
        logs()
    );
    let ran = Command::new(bin("orchctl"))
        .args([
            "--server",
            &url,
            "--token",
            &token,
            "run",
            "chat",
            "Once upon a time",
            "--max-tokens",
            "8",
            "--seed",
            "7",
        ])
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "orchctl run: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(!ran.stdout.is_empty(), "tokens on stdout");

    // The gateway's Pool holds both replicas' slots (2 x 2).
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let http = reqwest::blocking::Client::builder()
        .default_headers(headers.clone())
        .build()
        .unwrap();
    let health: Value = http
        .get(format!("{url}/v2/pools/chat/health"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["slotsTotal"], 4, "{health}");
    // Without the token: refused, like every route.
    let anonymous = reqwest::blocking::get(format!("{url}/v2/pools/chat/health")).unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    // SSE and the overload answer, unchanged: 4 slots + a queue of 2, tokens at 50/s.
    let tasks = TaskClient::with_headers(&url, headers);
    let body = json!({"pool": "chat", "prompt": "Once upon a time", "max_tokens": 40, "seed": 1});
    let burst = tasks.submit_burst(&body, 12);
    let (accepted, refused) = (&burst.accepted, &burst.refused);
    assert!(
        !refused.is_empty() && accepted.len() >= 4,
        "accepted {} refused {}",
        accepted.len(),
        refused.len()
    );
    for r in refused {
        assert!(r.headers.get("retry-after").is_some(), "Retry-After");
        assert_eq!(r.body["code"], "ADMISSION_REJECT");
    }
    for id in accepted {
        let events = tasks.events(id);
        assert_eq!(events.last().unwrap().event, "end", "{id}: {events:?}");
        assert_eq!(tokens(&events).len(), 40, "{id}");
    }
}

/// Serves `body` to each connection until the test ends (HTTP/1.0, one request each).
fn serve(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/org/repo/resolve/main/tiny.gguf",
        listener.local_addr().unwrap()
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(&body);
        }
    });
    url
}

#[test]
fn the_model_init_script_downloads_checks_the_digest_and_refuses_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let hub = fixtures(dir.path()).remove(2);
    let objects = documents(&export(&config, &["-f", &hub.display().to_string()]));
    let init = &find(&objects, "Deployment", "llorch-coder")["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["command"][0], "/bin/sh");
    let script = init["command"][2].as_str().unwrap().to_string();
    let bytes = std::fs::read(tiny_model()).unwrap();
    let url = serve(bytes.clone());
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let run = |url: &str, sha: &str| {
        Command::new("sh")
            .args(["-c", &script])
            .env("MODEL_DIR", &models)
            .env("MODEL_FILE", "tiny.gguf")
            .env("MODEL_URL", url)
            .env("MODEL_SHA256", sha)
            .env_remove("HF_TOKEN")
            .output()
            .unwrap()
    };
    let started = Instant::now();
    let good = run(&url, &sha256_hex(&bytes));
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert_eq!(std::fs::read(models.join("tiny.gguf")).unwrap(), bytes);
    std::fs::remove_file(models.join("tiny.gguf")).unwrap();
    let bad = run(&url, &"0".repeat(64));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("does not match the Model's digest"), "{err}");
    assert!(
        !models.join("tiny.gguf").exists(),
        "a file that fails its digest is never put in place"
    );
    // A placed file (no URL): checked where it is.
    std::fs::write(models.join("tiny.gguf"), &bytes).unwrap();
    assert!(run("", &sha256_hex(&bytes)).status.success());
    assert!(!run("", &"1".repeat(64)).status.success());
    std::fs::remove_file(models.join("tiny.gguf")).unwrap();
    let missing = run("", &sha256_hex(&bytes));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    assert!(started.elapsed() < Duration::from_secs(120));
}
