//! Writes the JSON Schemas of the manifest kinds and the config file into a directory
//! (default `schemas/`): `cargo run -p llama-orch-manifests --bin gen-schemas`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("schemas"));
    std::fs::create_dir_all(&dir)?;
    for (name, schema) in llorch_manifests::schema::all() {
        let text = serde_json::to_string_pretty(&schema).map_err(std::io::Error::other)? + "\n";
        std::fs::write(dir.join(name), text)?;
        println!("wrote {}", dir.join(name).display());
    }
    Ok(())
}
