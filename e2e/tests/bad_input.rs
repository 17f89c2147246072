//! End-to-end: a corpus of malformed manifests (ORCH-3030, OC-CONFIG-6001). Each one, dropped
//! into the watched directory, yields an error naming its file (and field, where there is
//! one) in the daemon's status; each one, given to `orchctl apply`, is refused with the same
//! kind of message and writes nothing. Throughout, the daemon stays healthy and a running,
//! valid Pool keeps exactly its containers. Special files named like manifests (a FIFO, a
//! link to a device) are refused at once: neither the daemon nor orchctl waits on them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use llama_orch_e2e::daemon::{Daemon, Runtime, mock_stack, pool_ready, replica_containers};
use llorch_manifests::api::Snapshot;

const HEAD: &str = "apiVersion: llama-orch.dev/v1alpha1\n";

fn engine(spec: &str) -> String {
    format!("{HEAD}kind: Engine\nmetadata: {{name: e1}}\nspec: {{{spec}}}\n")
}
fn model(spec: &str) -> String {
    format!("{HEAD}kind: Model\nmetadata: {{name: m1}}\nspec: {{{spec}}}\n")
}
fn pool(spec: &str) -> String {
    format!("{HEAD}kind: Pool\nmetadata: {{name: p1}}\nspec: {{{spec}}}\n")
}

const ENGINE_OK: &str = "image: 'llama-orch/mock-engine:dev', version: '1'";
const POOL_OK: &str = "engine: mock, model: chat-model, replicas: 1";

/// How a case is put on disk.
enum Body {
    Text(String),
    Bytes(Vec<u8>),
    SymlinkLoop,
    DanglingSymlink,
    /// A named pipe: a blocking open waits for a writer forever.
    Fifo,
    /// A symlink to a special file.
    SymlinkTo(&'static str),
}

struct Case {
    name: &'static str,
    body: Body,
    /// A substring the error must contain (besides the file name).
    needle: &'static str,
}

fn t(name: &'static str, text: String, needle: &'static str) -> Case {
    Case {
        name,
        body: Body::Text(text),
        needle,
    }
}

fn corpus() -> Vec<Case> {
    let billion_laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n\
        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
        g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\ni: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    let valid = pool(POOL_OK);
    vec![
        t("syntax-unclosed", "kind: [Pool\n".into(), "YAML syntax error"),
        t(
            "python-tag",
            format!("{HEAD}kind: Pool\nmetadata: {{name: !!python/object:os.system p1}}\nspec: {{{POOL_OK}}}\n"),
            "python/object",
        ),
        t(
            "tab-indented",
            format!("{HEAD}kind: Pool\nmetadata:\n  \tname: p1\nspec: {{{POOL_OK}}}\n"),
            "tab in the indentation",
        ),
        t(
            "syntax-indent",
            format!("{HEAD}kind: Pool\nmetadata:\n  name: p1\n   labels: x\n"),
            "YAML syntax error",
        ),
        t(
            "syntax-tab",
            format!("{HEAD}kind: Pool\nmetadata:\n\tname: p1\n"),
            "tab in the indentation",
        ),
        t(
            "unknown-top-field",
            format!("{HEAD}kind: Pool\nmetadata: {{name: p1}}\nspec: {{{POOL_OK}}}\nstatus: {{}}\n"),
            "unknown field `status`",
        ),
        t(
            "unknown-spec-field",
            pool("engine: mock, model: chat-model, replica: 1"),
            "unknown field `replica`",
        ),
        t(
            "wrong-type",
            pool("engine: mock, model: chat-model, replicas: two"),
            "spec.replicas",
        ),
        t(
            "negative",
            pool("engine: mock, model: chat-model, replicas: -1"),
            "spec.replicas",
        ),
        t(
            "too-many-replicas",
            pool("engine: mock, model: chat-model, replicas: 1000"),
            "maximum",
        ),
        t(
            "missing-field",
            pool("model: chat-model, replicas: 1"),
            "missing field `engine`",
        ),
        t(
            "missing-kind",
            format!("{HEAD}metadata: {{name: p1}}\nspec: {{{POOL_OK}}}\n"),
            "missing `kind`",
        ),
        t(
            "unknown-kind",
            format!("{HEAD}kind: Deployment\nmetadata: {{name: p1}}\nspec: {{}}\n"),
            "unknown kind `Deployment`",
        ),
        t(
            "empty-kind",
            format!("{HEAD}kind: ''\nmetadata: {{name: p1}}\nspec: {{}}\n"),
            "unknown kind",
        ),
        t("wrong-api-version", valid.replace("v1alpha1", "v2"), "apiVersion"),
        t(
            "missing-name",
            format!("{HEAD}kind: Pool\nmetadata: {{labels: {{a: b}}}}\nspec: {{{POOL_OK}}}\n"),
            "missing field `name`",
        ),
        t(
            "bad-name",
            valid.replace("name: p1", "name: Chat_Pool"),
            "metadata.name",
        ),
        t(
            "dangling-engine",
            pool("engine: nope, model: chat-model, replicas: 1"),
            "Engine `nope` does not exist",
        ),
        t(
            "dangling-model",
            pool("engine: mock, model: nope, replicas: 1"),
            "Model `nope` does not exist",
        ),
        t("duplicate-in-file", format!("{valid}---\n{valid}"), "already defined"),
        t(
            "duplicate-across-files",
            format!("{HEAD}kind: Pool\nmetadata: {{name: chat}}\nspec: {{{POOL_OK}}}\n"),
            "already defined",
        ),
        t("not-a-mapping-list", "- a\n- b\n".into(), "not a mapping"),
        t("not-a-mapping-scalar", "just words\n".into(), "not a mapping"),
        t(
            "gpus-word",
            pool("engine: mock, model: chat-model, replicas: 1, gpus: some"),
            "invalid GPU selection",
        ),
        t(
            "gpus-empty",
            pool("engine: mock, model: chat-model, replicas: 1, gpus: []"),
            "empty GPU list",
        ),
        t(
            "gpus-twice",
            pool("engine: mock, model: chat-model, replicas: 1, gpus: [0, 0]"),
            "listed twice",
        ),
        t(
            "queue-policy",
            pool("engine: mock, model: chat-model, replicas: 1, queue: {fullPolicy: drop}"),
            "spec.queue.fullPolicy",
        ),
        t(
            "provisioning-binary-with-image",
            engine("provisioning: binary, image: x, version: '1'"),
            "spec.executable",
        ),
        t("engine-no-image", engine("version: '1'"), "spec.image"),
        t(
            "engine-placeholder",
            engine(&format!("{ENGINE_OK}, args: ['--model', '{{weights}}']")),
            "unknown placeholder",
        ),
        t(
            "engine-health-path",
            engine(&format!("{ENGINE_OK}, health: {{path: health}}")),
            "spec.health.path",
        ),
        t(
            "model-plain-http-ref",
            model("ref: 'http://example.com/x.gguf', ctxMax: 8"),
            "loopback",
        ),
        t(
            "model-bad-digest",
            model("ref: 'file:/x.gguf', digest: 'md5:abc', ctxMax: 8"),
            "spec.digest",
        ),
        t("model-zero-ctx", model("ref: 'file:/x.gguf', ctxMax: 0"), "spec.ctxMax"),
        t(
            "ctx-over-model",
            pool("engine: mock, model: chat-model, replicas: 1, ctxSize: 999999"),
            "spec.ctxSize",
        ),
        t("alias-bomb", billion_laughs.into(), "YAML syntax error"),
        t(
            "deep-nesting",
            format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)),
            "YAML syntax error",
        ),
        t("mid-write", valid[..valid.len() / 2].to_string(), "YAML syntax error"),
        Case {
            name: "huge",
            body: Body::Text(format!("# {}\n{valid}", "x".repeat(2 * 1024 * 1024))),
            needle: "at most",
        },
        Case {
            name: "binary",
            body: Body::Bytes((0..4096u32).map(|i| (i * 7919 % 251) as u8).collect()),
            needle: "binary",
        },
        Case {
            name: "latin1",
            body: Body::Bytes(b"kind: Pool\nmetadata: {name: caf\xe9}\n".to_vec()),
            needle: "UTF-8",
        },
        Case {
            name: "symlink-loop",
            body: Body::SymlinkLoop,
            needle: "symlink loop",
        },
        Case {
            name: "dangling-symlink",
            body: Body::DanglingSymlink,
            needle: "cannot open",
        },
        Case {
            name: "fifo",
            body: Body::Fifo,
            needle: "not a regular file (a FIFO)",
        },
        Case {
            name: "char-device",
            body: Body::SymlinkTo("/dev/zero"),
            needle: "not a regular file",
        },
    ]
}

fn put(dir: &Path, file: &str, body: &Body) {
    let path = dir.join(file);
    match body {
        Body::Text(s) => std::fs::write(&path, s).unwrap(),
        Body::Bytes(b) => std::fs::write(&path, b).unwrap(),
        Body::SymlinkLoop => std::os::unix::fs::symlink(file, &path).unwrap(),
        Body::DanglingSymlink => std::os::unix::fs::symlink("/nonexistent/llorch.yaml", &path).unwrap(),
        Body::SymlinkTo(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
        Body::Fifo => {
            let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
            assert!(made.success(), "mkfifo {}", path.display());
        }
    }
}

/// Every error the snapshot shows, as text.
fn all_errors(s: &Snapshot) -> Vec<String> {
    s.file_errors
        .iter()
        .chain(s.objects.iter().flat_map(|o| o.status.manifest_errors.iter()))
        .map(ToString::to_string)
        .collect()
}

fn bad_inputs_are_reported_and_change_nothing(rt: Runtime) {
    let mut d = Daemon::start(rt);
    d.write_manifest("good.yaml", &mock_stack("mock", "chat", 1, &d.model_path(), &[]));
    let s = d.wait_for("pool chat Ready", Duration::from_secs(20), |s| pool_ready(s, "chat", 1));
    let good_ids = replica_containers(&s, "chat");
    let outside = tempfile::tempdir().unwrap();
    let cases = corpus();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    for case in &cases {
        let file = format!("bad-{}.yaml", case.name);
        // 1. Through the watched directory.
        put(&d.manifests_dir(), &file, &case.body);
        let s = d.wait_for(
            &format!("an error for {file} containing {:?}", case.needle),
            // Generous: the alias bomb alone costs the debug parser ~2.5 s of CPU before its
            // node budget stops it, and a loaded 2-core machine stretches that.
            Duration::from_secs(30),
            |s| {
                all_errors(s)
                    .iter()
                    .any(|e| e.contains(&file) && e.contains(case.needle))
            },
        );
        assert!(pool_ready(&s, "chat", 1), "{}: the good pool stays Ready", case.name);
        assert_eq!(
            replica_containers(&s, "chat"),
            good_ids,
            "{}: the good pool's containers are untouched",
            case.name
        );
        std::fs::remove_file(d.manifests_dir().join(&file)).unwrap();
        assert!(d.is_healthy(), "{}: the daemon is healthy", case.name);

        // 2. Through `orchctl apply`: refused, nothing written.
        put(outside.path(), &file, &case.body);
        let before: Vec<_> = std::fs::read_dir(d.manifests_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let out = d.orchctl(&["apply", "-f", &outside.path().join(&file).display().to_string()]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "{}: orchctl apply must fail; it said: {text}",
            case.name
        );
        assert!(
            text.contains(&file),
            "{}: orchctl names the file; it said: {text}",
            case.name
        );
        let after: Vec<_> = std::fs::read_dir(d.manifests_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(before, after, "{}: orchctl apply wrote nothing", case.name);
    }
    // The file caught mid-write, once complete, is accepted.
    d.write_manifest("late.yaml", &pool(POOL_OK));
    d.wait_for("p1 accepted once complete", Duration::from_secs(20), |s| {
        pool_ready(s, "p1", 1)
    });
    assert_eq!(replica_containers(&d.snapshot(), "chat"), good_ids);
    assert!(d.is_healthy());
    d.kill();
}

#[test]
fn docker_bad_inputs_are_reported_and_change_nothing() {
    bad_inputs_are_reported_and_change_nothing(Runtime::docker());
}

#[test]
fn podman_bad_inputs_are_reported_and_change_nothing() {
    bad_inputs_are_reported_and_change_nothing(Runtime::podman());
}
