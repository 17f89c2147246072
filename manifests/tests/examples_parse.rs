//! The shipped examples parse and validate as a set.
use llorch_manifests::{parse_file, validate};

#[test]
fn shipped_examples_parse_and_reference_each_other() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let bytes = std::fs::read(&path).unwrap();
            let objs = parse_file(&path.display().to_string(), &bytes)
                .unwrap_or_else(|e| panic!("{}: {e:#?}", path.display()));
            all.extend(objs);
        }
    }
    assert!(all.len() >= 3);
    assert_eq!(validate::check_set(&all), vec![]);
}

#[test]
fn errors_name_file_document_and_field() {
    let yaml = b"apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata: {name: ok}\nspec: {image: x, version: '1'}\n---\napiVersion: llama-orch.dev/v1alpha1\nkind: Pool\nmetadata: {name: p}\nspec: {engine: e, model: m, replicas: two}\n";
    let errs = parse_file("f.yaml", yaml).unwrap_err();
    assert_eq!(errs.len(), 1);
    let msg = errs[0].to_string();
    assert!(
        msg.contains("f.yaml: document 1 (pool/p): field `spec.replicas`"),
        "{msg}"
    );
    let unknown = b"apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata: {name: m}\nspec: {ref: 'file:/x', ctxMax: 1, colour: red}\n";
    let msg = parse_file("g.yaml", unknown).unwrap_err()[0].to_string();
    assert!(msg.contains("unknown field `colour`"), "{msg}");
    let syntax = b"kind: [unclosed\n";
    let e = &parse_file("h.yaml", syntax).unwrap_err()[0];
    assert!(e.message.contains("YAML syntax error"), "{e}");
    println!("{e}");
}
