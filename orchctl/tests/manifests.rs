//! apply, diff and delete against a temporary manifests directory, with no daemon running.

mod common;

use common::{ENGINE, Home, MODEL, POOL, examples};
use llorch_manifests::{AnyObject, parse_file};

fn home() -> Home {
    // Nothing listens on port 9: these commands must not need the daemon.
    Home::new("http://127.0.0.1:9")
}

#[test]
fn apply_writes_each_object_to_its_own_file_with_a_header_and_absolute_model_refs() {
    let home = home();
    let examples = examples().canonicalize().unwrap();
    let ran = home.run_blocking(&["apply", "-f", &examples.display().to_string()]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(
        ran.out, "engine/mock created\nmodel/tiny created\npool/chat created\n",
        "dependencies first"
    );
    assert_eq!(
        home.manifest_names(),
        ["engine-mock.yaml", "model-tiny.yaml", "pool-chat.yaml"]
    );

    let written = std::fs::read_to_string(home.manifests().join("model-tiny.yaml")).unwrap();
    let source = examples.join("tiny-model.yaml");
    assert!(
        written.starts_with(&format!(
            "# Written by orchctl apply from {}; edit freely.\n",
            source.display()
        )),
        "{written}"
    );
    let objects = parse_file("model-tiny.yaml", written.as_bytes()).unwrap();
    let AnyObject::Model(model) = &objects[0].object else {
        panic!("not a model")
    };
    assert_eq!(
        model.spec.reference,
        format!("file:{}", examples.join("models/tiny.gguf").display())
    );
}

#[test]
fn written_manifests_parse_back_to_the_applied_objects() {
    let home = home();
    let input = home.input_file(
        "all.yaml",
        &format!(
            "{ENGINE}---\n{POOL}---\n{}",
            MODEL.replace("file:models/tiny.gguf", "file:/abs/tiny.gguf")
        ),
    );
    assert_eq!(home.run_blocking(&["apply", "-f", &input]).code, 0);
    let original = parse_file("all.yaml", std::fs::read(&input).unwrap().as_slice()).unwrap();
    for located in original {
        let r = located.object.object_ref();
        let path = home.manifests().join(format!("{}-{}.yaml", r.kind.lower(), r.name));
        let back = parse_file("x", &std::fs::read(path).unwrap()).unwrap();
        assert_eq!(back[0].object, located.object, "{r} round-trips");
    }
}

#[test]
fn applying_again_is_unchanged_and_an_edit_is_configured() {
    let home = home();
    let input = home.input_file("all.yaml", &format!("{ENGINE}---\n{MODEL}---\n{POOL}"));
    assert_eq!(home.run_blocking(&["apply", "-f", &input]).code, 0);
    let before = std::fs::metadata(home.manifests().join("pool-chat.yaml"))
        .unwrap()
        .modified()
        .unwrap();

    let again = home.run_blocking(&["apply", "-f", &input]);
    assert_eq!(
        again.out,
        "engine/mock unchanged\nmodel/tiny unchanged\npool/chat unchanged\n"
    );
    let after = std::fs::metadata(home.manifests().join("pool-chat.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "an unchanged object is not rewritten");

    let edited = home.input_file("pool.yaml", &POOL.replace("replicas: 2", "replicas: 3"));
    let ran = home.run_blocking(&["apply", "-f", &edited]);
    assert_eq!(ran.out, "pool/chat configured\n");
    assert!(
        std::fs::read_to_string(home.manifests().join("pool-chat.yaml"))
            .unwrap()
            .contains("replicas: 3")
    );
}

#[test]
fn an_invalid_manifest_prints_one_error_per_line_and_writes_nothing() {
    let home = home();
    let good = home.input_file("engine.yaml", ENGINE);
    let bad = home.input_file("pool.yaml", &POOL.replace("replicas: 2", "replicas: 2\n  replicaz: 1"));
    let ran = home.run_blocking(&["apply", "-f", &good, "-f", &bad]);
    assert_eq!(ran.code, 1);
    // The first line says where apply acts; the first error follows it.
    assert!(
        ran.err.starts_with("applying to the manifests directory"),
        "{}",
        ran.err
    );
    let first = ran.err.lines().nth(1).unwrap();
    assert!(
        first.starts_with("error: ") && first.contains("pool.yaml") && first.contains("replicaz"),
        "{}",
        ran.err
    );
    assert!(ran.err.contains("nothing was applied"));
    assert!(
        home.manifest_names().is_empty(),
        "not even the valid engine was written"
    );
}

#[test]
fn a_pool_is_validated_against_what_the_manifests_directory_already_holds() {
    let home = home();
    let pool = home.input_file("pool.yaml", POOL);
    let ran = home.run_blocking(&["apply", "-f", &pool]);
    assert_eq!(ran.code, 1);
    assert!(ran.err.contains("Engine `mock` does not exist"), "{}", ran.err);
    assert!(ran.err.contains("Model `tiny` does not exist"), "{}", ran.err);
    assert!(home.manifest_names().is_empty());

    let deps = home.input_file("deps.yaml", &format!("{ENGINE}---\n{MODEL}"));
    assert_eq!(home.run_blocking(&["apply", "-f", &deps]).code, 0);
    let ran = home.run_blocking(&["apply", "-f", &pool]);
    assert_eq!((ran.code, ran.out.as_str()), (0, "pool/chat created\n"), "{}", ran.err);
}

#[test]
fn a_change_that_breaks_an_existing_pool_is_refused() {
    let home = home();
    let all = home.input_file("all.yaml", &format!("{ENGINE}---\n{MODEL}---\n{POOL}"));
    assert_eq!(home.run_blocking(&["apply", "-f", &all]).code, 0);
    let smaller = home.input_file("model.yaml", &MODEL.replace("ctxMax: 4096", "ctxMax: 1024"));
    let ran = home.run_blocking(&["apply", "-f", &smaller]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.err.contains("2048 exceeds Model `tiny`'s ctxMax of 1024"),
        "{}",
        ran.err
    );
    let kept = std::fs::read_to_string(home.manifests().join("model-tiny.yaml")).unwrap();
    assert!(kept.contains("4096"), "the model file is untouched");
}

#[test]
fn an_object_declared_in_a_hand_written_file_is_not_applied_and_the_file_is_named() {
    let home = home();
    let mine = home.hand_written("my-engines.yaml", ENGINE);
    let input = home.input_file("engine.yaml", &ENGINE.replace("0.1.0", "0.2.0"));
    let ran = home.run_blocking(&["apply", "-f", &input]);
    assert_eq!(ran.code, 1);
    assert!(ran.err.contains(&mine.display().to_string()), "{}", ran.err);
    assert!(ran.err.contains("engine/mock is already declared in"), "{}", ran.err);
    assert_eq!(home.manifest_names(), ["my-engines.yaml"]);
}

#[test]
fn apply_reads_stdin_for_dash() {
    let home = home();
    let ran = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(home.run_with_stdin(&["apply", "-f", "-"], ENGINE.as_bytes()));
    assert_eq!(
        (ran.code, ran.out.as_str()),
        (0, "engine/mock created\n"),
        "{}",
        ran.err
    );
    let written = std::fs::read_to_string(home.manifests().join("engine-mock.yaml")).unwrap();
    assert!(written.starts_with("# Written by orchctl apply from stdin; edit freely.\n"));
}

#[test]
fn diff_reports_new_changed_and_unchanged_objects_with_kubectl_exit_codes() {
    let home = home();
    let all = home.input_file("all.yaml", &format!("{ENGINE}---\n{MODEL}"));
    let ran = home.run_blocking(&["diff", "-f", &all]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.out.contains("engine/mock new\n--- /dev/null\n+++ "), "{}", ran.out);
    assert!(ran.out.contains("+  image: llama-orch/mock-engine:dev"), "{}", ran.out);
    assert!(home.manifest_names().is_empty(), "diff writes nothing");

    assert_eq!(home.run_blocking(&["apply", "-f", &all]).code, 0);
    let ran = home.run_blocking(&["diff", "-f", &all]);
    assert_eq!(
        (ran.code, ran.out.as_str()),
        (0, "engine/mock unchanged\nmodel/tiny unchanged\n")
    );

    let edited = home.input_file("engine.yaml", &ENGINE.replace("0.1.0", "0.2.0"));
    let ran = home.run_blocking(&["diff", "-f", &edited]);
    assert_eq!(ran.code, 1);
    assert!(ran.out.starts_with("engine/mock changed\n"), "{}", ran.out);
    assert!(
        ran.out.contains("-  version: \"0.1.0\"") && ran.out.contains("+  version: \"0.2.0\""),
        "{}",
        ran.out
    );
}

#[test]
fn diff_ignores_comments_and_layout_of_a_hand_written_file() {
    let home = home();
    home.hand_written(
        "engines.yaml",
        &format!(
            "# my engines\n{}",
            ENGINE.replace("  version: \"0.1.0\"\n", "  version: '0.1.0'   # pinned\n")
        ),
    );
    let input = home.input_file("engine.yaml", ENGINE);
    let ran = home.run_blocking(&["diff", "-f", &input]);
    assert_eq!(
        (ran.code, ran.out.as_str()),
        (0, "engine/mock unchanged\n"),
        "{}",
        ran.err
    );
}

#[test]
fn diff_of_an_invalid_manifest_exits_2() {
    let home = home();
    let bad = home.input_file("bad.yaml", "kind: [");
    assert_eq!(home.run_blocking(&["diff", "-f", &bad]).code, 2);
}

#[test]
fn delete_removes_a_file_that_holds_only_the_object() {
    let home = home();
    let all = home.input_file("all.yaml", &format!("{ENGINE}---\n{MODEL}"));
    assert_eq!(home.run_blocking(&["apply", "-f", &all]).code, 0);
    let ran = home.run_blocking(&["delete", "model/tiny"]);
    assert_eq!((ran.code, ran.out.as_str()), (0, "model/tiny deleted\n"));
    assert_eq!(home.manifest_names(), ["engine-mock.yaml"]);
    let ran = home.run_blocking(&["delete", "engine", "mock"]);
    assert_eq!(ran.code, 0);
    assert!(home.manifest_names().is_empty());
}

#[test]
fn delete_refuses_a_shared_file_and_names_it() {
    let home = home();
    let shared = home.hand_written("stack.yaml", &format!("{ENGINE}---\n{MODEL}"));
    let ran = home.run_blocking(&["delete", "model/tiny"]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.err.contains(&shared.display().to_string()) && ran.err.contains("engine/mock"),
        "{}",
        ran.err
    );
    assert!(ran.err.contains("edit that file"), "{}", ran.err);
    assert_eq!(home.manifest_names(), ["stack.yaml"]);
}

#[test]
fn delete_of_a_missing_object_fails_unless_told_to_ignore_it() {
    let home = home();
    let ran = home.run_blocking(&["delete", "pool/nope"]);
    assert_eq!(ran.code, 1);
    assert!(ran.err.contains("pool/nope not found"), "{}", ran.err);
    assert_eq!(
        home.run_blocking(&["delete", "pool/nope", "--ignore-not-found"]).code,
        0
    );
}

#[test]
fn delete_warns_when_another_object_still_refers_to_the_deleted_one() {
    let home = home();
    let all = home.input_file("all.yaml", &format!("{ENGINE}---\n{MODEL}---\n{POOL}"));
    assert_eq!(home.run_blocking(&["apply", "-f", &all]).code, 0);
    let ran = home.run_blocking(&["delete", "engine/mock"]);
    assert_eq!(ran.code, 0);
    assert!(
        ran.err.contains("warning:") && ran.err.contains("Engine `mock` does not exist"),
        "{}",
        ran.err
    );
}

#[test]
fn delete_dash_f_deletes_what_the_file_declares() {
    let home = home();
    let all = home.input_file("all.yaml", &format!("{ENGINE}---\n{MODEL}"));
    assert_eq!(home.run_blocking(&["apply", "-f", &all]).code, 0);
    let ran = home.run_blocking(&["delete", "-f", &all]);
    assert_eq!(
        (ran.code, ran.out.as_str()),
        (0, "model/tiny deleted\nengine/mock deleted\n")
    );
    assert!(home.manifest_names().is_empty());
}

#[test]
fn delete_dash_f_removes_pools_before_what_they_refer_to() {
    let home = home();
    let all = home.input_file("all.yaml", &format!("{ENGINE}---\n{MODEL}---\n{POOL}"));
    assert_eq!(home.run_blocking(&["apply", "-f", &all]).code, 0);
    let ran = home.run_blocking(&["delete", "-f", &all]);
    assert_eq!(ran.out, "pool/chat deleted\nmodel/tiny deleted\nengine/mock deleted\n");
    assert!(
        !ran.err.contains("warning"),
        "no dangling reference along the way: {}",
        ran.err
    );
}

#[test]
fn apply_keeps_the_inputs_modeline_or_writes_the_published_one() {
    let home = home();
    let relative = home.input_file(
        "pool.yaml",
        &format!("# yaml-language-server: $schema=../schemas/pool.schema.json\n{POOL}"),
    );
    let url = home.input_file(
        "engine.yaml",
        &format!("# yaml-language-server: $schema=https://example.com/s/engine.schema.json\n{ENGINE}"),
    );
    let plain = home.input_file("model.yaml", &MODEL.replace("file:models/", "file:/abs/"));
    for input in [&url, &plain, &relative] {
        let ran = home.run_blocking(&["apply", "-f", input]);
        assert_eq!(ran.code, 0, "{ran:?}");
    }
    let modeline = |file: &str| {
        let text = std::fs::read_to_string(home.manifests().join(file)).unwrap();
        let line = text.lines().nth(1).unwrap_or_default().to_string();
        assert!(parse_file(file, text.as_bytes()).is_ok(), "{text}");
        line
    };
    assert_eq!(
        modeline("engine-mock.yaml"),
        "# yaml-language-server: $schema=https://example.com/s/engine.schema.json",
        "the user's URL is kept"
    );
    assert_eq!(
        modeline("model-tiny.yaml"),
        "# yaml-language-server: $schema=https://llama-orch.dev/schemas/v1alpha1/model.schema.json",
        "none in the input: the published schema"
    );
    assert_eq!(
        modeline("pool-chat.yaml"),
        format!(
            "# yaml-language-server: $schema={}",
            home.tmp.path().join("schemas/pool.schema.json").display()
        ),
        "a relative path is resolved against the input's folder, so it still finds the schema"
    );
}

#[test]
fn apply_diff_and_delete_say_where_they_act() {
    let home = home();
    let deps = home.input_file("deps.yaml", &format!("{ENGINE}---\n{MODEL}"));
    let local = home.run_blocking(&["apply", "-f", &deps]);
    assert_eq!(local.code, 0, "{}", local.err);
    let here = format!(
        "applying to the manifests directory {} on this machine (no --server named)",
        home.manifests().display()
    );
    assert!(local.err.starts_with(&here), "{}", local.err);
    let diff = home.run_blocking(&["diff", "-f", &deps]);
    assert!(
        diff.err.starts_with("comparing with the manifests directory"),
        "{}",
        diff.err
    );
    // With a server named, the same commands act there (here: nothing answers, and it says so
    // after saying where it tried).
    let remote = home.run_blocking(&["--server", "http://127.0.0.1:9", "apply", "-f", &deps]);
    assert_eq!(remote.code, 1, "{remote:?}");
    assert!(
        remote
            .err
            .starts_with("applying to llama-orchd at http://127.0.0.1:9 (its write API)\n"),
        "{}",
        remote.err
    );
    let gone = home.run_blocking(&["--server", "http://127.0.0.1:9", "delete", "engine/mock"]);
    assert!(
        gone.err.starts_with("deleting from llama-orchd at http://127.0.0.1:9"),
        "{}",
        gone.err
    );
}
