//! The corpus of malformed manifests (ORCH-3030, OC-CONFIG-6001): what `tests/bad_input.rs`
//! drops into a running daemon's directory and gives to `orchctl apply`, and what
//! `manifests/tests/schema_agreement.rs` feeds to the JSON Schemas and the validator alike.
//!
//! Plain data built with `std` only: the manifests crate includes this file by path, without
//! depending on this crate.
#![allow(dead_code)]

/// The first line of every manifest.
pub const HEAD: &str = "apiVersion: llama-orch.dev/v1alpha1\n";

/// Engine `e1` with `spec`.
pub fn engine(spec: &str) -> String {
    format!("{HEAD}kind: Engine\nmetadata: {{name: e1}}\nspec: {{{spec}}}\n")
}
/// Model `m1` with `spec`.
pub fn model(spec: &str) -> String {
    format!("{HEAD}kind: Model\nmetadata: {{name: m1}}\nspec: {{{spec}}}\n")
}
/// Pool `p1` with `spec`.
pub fn pool(spec: &str) -> String {
    format!("{HEAD}kind: Pool\nmetadata: {{name: p1}}\nspec: {{{spec}}}\n")
}

/// A valid Engine spec.
pub const ENGINE_OK: &str = "image: 'llama-orch/mock-engine:dev', version: '1'";
/// A valid Pool spec (its Engine and Model are the running stack's).
pub const POOL_OK: &str = "engine: mock, model: chat-model, replicas: 1";

/// How a case is put on disk.
pub enum Body {
    /// A file with this text.
    Text(String),
    /// A file with these bytes.
    Bytes(Vec<u8>),
    /// A symlink to itself.
    SymlinkLoop,
    /// A symlink to nothing.
    DanglingSymlink,
    /// A named pipe: a blocking open waits for a writer forever.
    Fifo,
    /// A symlink to a special file.
    SymlinkTo(&'static str),
}

/// One malformed input.
pub struct Case {
    /// The file is `bad-<name>.yaml`.
    pub name: &'static str,
    /// What is on disk.
    pub body: Body,
    /// A substring the error must contain (besides the file name).
    pub needle: &'static str,
}

/// A text case.
pub fn t(name: &'static str, text: String, needle: &'static str) -> Case {
    Case {
        name,
        body: Body::Text(text),
        needle,
    }
}

/// Every case.
pub fn corpus() -> Vec<Case> {
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
