//! The manifests a user hands to `apply`, `diff` or `delete -f`: files, folders (their
//! `*.yaml`/`*.yml`, sorted, not recursive) or `-` for stdin; parsed with `parse_file`, with
//! relative `file:` model references made absolute against the input file's folder (the
//! manifests directory is elsewhere, so a relative path would point at nothing there).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use llorch_controller::manifest_dir;
pub use llorch_controller::manifest_dir::apply::{InputObject, absolutize_model_ref, normalize};
use llorch_manifests::{MAX_MANIFEST_BYTES, ManifestError, parse_file};

/// One input file's bytes.
#[derive(Clone, Debug)]
pub struct Source {
    /// How errors and headers name it: the path as given, or `stdin`.
    pub name: String,
    /// The absolute folder relative model references are resolved against.
    pub base_dir: PathBuf,
    /// Its contents.
    pub bytes: Vec<u8>,
}

/// Reads every `-f` argument. `cwd` resolves relative paths; `stdin` serves `-`.
pub fn read_sources(args: &[String], cwd: &Path, stdin: &mut dyn Read) -> anyhow::Result<Vec<Source>> {
    let mut sources = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut bytes = Vec::new();
            stdin
                .take(MAX_MANIFEST_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .context("cannot read manifests from stdin")?;
            sources.push(Source {
                name: "stdin".into(),
                base_dir: cwd.to_path_buf(),
                bytes,
            });
            continue;
        }
        let path = Path::new(arg);
        let absolute = normalize(&cwd.join(path));
        let meta = std::fs::metadata(&absolute).with_context(|| format!("cannot read {arg}"))?;
        let files = if meta.is_dir() {
            let files = manifest_dir::list(&absolute)?;
            if files.is_empty() {
                anyhow::bail!("{arg} holds no *.yaml or *.yml files");
            }
            files
        } else {
            vec![absolute]
        };
        for file in files {
            let bytes = manifest_dir::read_capped(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let base_dir = file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| cwd.to_path_buf());
            sources.push(Source {
                name: file.display().to_string(),
                base_dir,
                bytes,
            });
        }
    }
    Ok(sources)
}

/// Parses every source; all errors of all sources, or every object with its references
/// resolved.
pub fn parse_sources(sources: &[Source]) -> Result<Vec<InputObject>, Vec<ManifestError>> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        match parse_file(&source.name, &source.bytes) {
            Ok(located) => objects.extend(located.into_iter().map(|mut l| {
                absolutize_model_ref(&mut l.object, &source.base_dir);
                InputObject {
                    located: l,
                    source: source.name.clone(),
                    schema: schema_of(source),
                }
            })),
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    if errors.is_empty() { Ok(objects) } else { Err(errors) }
}

/// The schema the source's `yaml-language-server` modeline names, a relative path resolved
/// against the source's folder (the written file lives elsewhere).
fn schema_of(source: &Source) -> Option<String> {
    let text = std::str::from_utf8(&source.bytes).ok()?;
    let target = llorch_manifests::schema::modeline_target(text)?;
    if target.contains("://") || Path::new(target).is_absolute() {
        return Some(target.to_string());
    }
    Some(normalize(&source.base_dir.join(target)).display().to_string())
}

/// Reads and parses every `-f` argument (files relative to the working directory); every
/// parse error of every file in one error.
pub fn read_objects(args: &[String], stdin: &mut dyn Read) -> anyhow::Result<Vec<InputObject>> {
    let cwd = std::env::current_dir()?;
    let sources = read_sources(args, &cwd, stdin)?;
    parse_sources(&sources).map_err(|errors| {
        anyhow::anyhow!(
            "{}",
            errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use llorch_manifests::AnyObject;

    const MODEL: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata:\n  name: tiny\nspec:\n  ref: file:models/../models/tiny.gguf\n  ctxMax: 4096\n";

    #[test]
    fn relative_model_refs_resolve_against_the_input_files_folder() {
        let sources = vec![Source {
            name: "m.yaml".into(),
            base_dir: "/in/put".into(),
            bytes: MODEL.into(),
        }];
        let objects = parse_sources(&sources).unwrap();
        let AnyObject::Model(m) = &objects[0].located.object else {
            panic!("not a model")
        };
        assert_eq!(m.spec.reference, "file:/in/put/models/tiny.gguf");
    }

    #[test]
    fn absolute_and_non_file_refs_are_left_alone() {
        let text = MODEL.replace("file:models/../models/tiny.gguf", "file:/abs/tiny.gguf");
        let sources = vec![Source {
            name: "m.yaml".into(),
            base_dir: "/in".into(),
            bytes: text.into(),
        }];
        let objects = parse_sources(&sources).unwrap();
        let AnyObject::Model(m) = &objects[0].located.object else {
            panic!("not a model")
        };
        assert_eq!(m.spec.reference, "file:/abs/tiny.gguf");
    }

    #[test]
    fn a_folder_input_reads_its_yaml_files_in_name_order_and_stdin_reads_dash() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("b.yaml"), "").unwrap();
        std::fs::write(tmp.path().join("a.yml"), "").unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "").unwrap();
        let mut stdin: &[u8] = b"from stdin";
        let sources = read_sources(&[".".to_string(), "-".to_string()], tmp.path(), &mut stdin).unwrap();
        let names: Vec<String> = sources
            .iter()
            .map(|s| s.name.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml", "stdin"]);
        assert_eq!(sources[2].bytes, b"from stdin");
    }

    #[test]
    fn parse_errors_of_every_input_are_reported_together() {
        let bad = |name: &str| Source {
            name: name.into(),
            base_dir: "/".into(),
            bytes: b"kind: [".to_vec(),
        };
        let errors = parse_sources(&[bad("one.yaml"), bad("two.yaml")]).unwrap_err();
        assert!(errors.iter().any(|e| e.file == "one.yaml"));
        assert!(errors.iter().any(|e| e.file == "two.yaml"));
    }
}
