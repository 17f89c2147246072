//! The committed JSON Schemas under `schemas/` equal what the types generate. When this fails,
//! run `cargo run -p llama-orch-manifests --bin gen-schemas` and commit the result.

#[test]
fn committed_schemas_match_the_types() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas"));
    for (name, schema) in llorch_manifests::schema::all() {
        let want = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let have = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| {
            panic!("schemas/{name}: {e}; run `cargo run -p llama-orch-manifests --bin gen-schemas`")
        });
        assert!(
            have == want,
            "schemas/{name} drifted from the types; run `cargo run -p llama-orch-manifests --bin gen-schemas` and commit"
        );
    }
}
