//! The client of the daemon's write API (`POST /v2/manifests`, `DELETE
//! /v2/manifests/{kind}/{name}`), which `apply`, `diff` and `delete` use when a server is named
//! ([`WriteTarget::Api`](crate::context::WriteTarget::Api)), and how its refusals are printed.

use std::io::Write;

use llorch_controller::manifest_dir::apply::absolutize_model_ref;
use llorch_manifests::api::{ApplyRequest, ApplyResult, DeleteResult, ManifestText};
use llorch_manifests::render::manifest_yaml;
use llorch_manifests::task::ErrorCode;
use llorch_manifests::{AnyObject, ObjectRef};

use crate::client::{Client, RequestError, plural};
use crate::input::Source;

impl Client {
    /// `POST /v2/manifests`.
    pub async fn apply_manifests(&self, req: &ApplyRequest) -> Result<ApplyResult, RequestError> {
        let url = self.url(&["v2", "manifests"])?;
        let response = self
            .http
            .post(url.clone())
            .json(req)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.decode(&url, response).await
    }

    /// `DELETE /v2/manifests/{kind}/{name}`.
    pub async fn delete_manifest(&self, object: &ObjectRef) -> Result<DeleteResult, RequestError> {
        let url = self.url(&["v2", "manifests", plural(object.kind), &object.name])?;
        let response = self
            .http
            .delete(url.clone())
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        self.decode(&url, response).await
    }
}

/// Whether relative `file:` references are resolved here before sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelativeRefs {
    /// The server is on loopback, so taken to be this machine: a relative reference is
    /// resolved against its manifest's folder, as it would be when writing the directory.
    ResolveHere,
    /// The server is elsewhere: references go as written, and the daemon refuses relative
    /// ones (they would name a file relative to its manifests directory, not your folder).
    SendAsWritten,
}

/// The request for `sources` (their bytes must be UTF-8 text, as YAML is), and one note per
/// reference resolved here.
pub fn request(sources: &[Source], dry_run: bool, refs: RelativeRefs) -> anyhow::Result<(ApplyRequest, Vec<String>)> {
    let mut notes = Vec::new();
    let files = sources
        .iter()
        .map(|s| {
            let text = String::from_utf8(s.bytes.clone())
                .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text, so it cannot be a manifest", s.name))?;
            let text = match refs {
                RelativeRefs::ResolveHere => resolve_relative_refs(s, text, &mut notes)?,
                RelativeRefs::SendAsWritten => text,
            };
            Ok(ManifestText {
                name: s.name.clone(),
                text,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((ApplyRequest { files, dry_run }, notes))
}

/// `text` with every Model's relative `file:` reference made absolute against the source's
/// folder, re-rendered; unchanged (comments and all) when it holds none or does not parse (the
/// daemon then names the error against the text as written).
fn resolve_relative_refs(source: &Source, text: String, notes: &mut Vec<String>) -> anyhow::Result<String> {
    let Ok(located) = llorch_manifests::parse_file(&source.name, text.as_bytes()) else {
        return Ok(text);
    };
    let mut changed = false;
    let mut documents = Vec::with_capacity(located.len());
    for l in located {
        let mut object = l.object;
        let before = object.clone();
        absolutize_model_ref(&mut object, &source.base_dir);
        if let (AnyObject::Model(was), AnyObject::Model(now)) = (&before, &object)
            && was.spec.reference != now.spec.reference
        {
            changed = true;
            notes.push(format!(
                "{}: model `{}`: `ref: {}` sent as `{}` (the server is on loopback, so taken to be this machine)",
                source.name,
                now.name(),
                was.spec.reference,
                now.spec.reference
            ));
        }
        documents.push(manifest_yaml(&object).map_err(|e| anyhow::anyhow!("{}: {e}", source.name))?);
    }
    Ok(if changed { documents.join("---\n") } else { text })
}

/// True for the refusals that list what to fix (invalid manifests, conflicts, policy), which
/// are printed one `error:` line each rather than as one failure.
pub fn is_listed_refusal(e: &RequestError) -> bool {
    matches!(
        e,
        RequestError::Api { body, .. }
            if matches!(body.code, ErrorCode::InvalidManifest | ErrorCode::Conflict | ErrorCode::PolicyRefused)
    )
}

/// Prints a refusal's lines as `error:` lines.
pub fn print_refusal(err: &mut dyn Write, e: &RequestError) -> std::io::Result<()> {
    for line in e.to_string().lines() {
        writeln!(err, "error: {line}")?;
    }
    Ok(())
}

/// An unreachable daemon, said with why a daemon was needed at all.
pub fn explain(e: RequestError, manifests_dir: &std::path::Path) -> anyhow::Error {
    match e {
        RequestError::Unreachable { .. } => anyhow::anyhow!(
            "{e} (a server was named with --server or $LLAMA_ORCH_URL, so this goes through its write API; \
             without one, orchctl edits {} on this machine directly)",
            manifests_dir.display()
        ),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::PathBuf;

    use super::*;

    const MODEL: &str = "# my model\napiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata:\n  name: tiny\nspec:\n  ref: file:../models/tiny.gguf\n  ctxMax: 4096\n";
    const ENGINE: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata:\n  name: e\nspec:\n  image: x:1\n  version: \"1\"\n  api: llamacpp\n";

    fn source(name: &str, text: &str) -> Source {
        Source {
            name: name.into(),
            base_dir: PathBuf::from("/home/me/stack"),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn on_loopback_relative_refs_are_resolved_against_their_folder_and_said() {
        let sources = [source("stack/tiny.yaml", MODEL), source("stack/engine.yaml", ENGINE)];
        let (req, notes) = request(&sources, false, RelativeRefs::ResolveHere).unwrap();
        assert!(
            req.files[0].text.contains("ref: file:/home/me/models/tiny.gguf"),
            "{}",
            req.files[0].text
        );
        assert_eq!(
            req.files[1].text, ENGINE,
            "a file without relative refs goes as written"
        );
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("`ref: file:../models/tiny.gguf` sent as `file:/home/me/models/tiny.gguf`"),
            "{}",
            notes[0]
        );

        let (req, notes) = request(&sources, true, RelativeRefs::SendAsWritten).unwrap();
        assert_eq!(req.files[0].text, MODEL, "elsewhere, the daemon sees what was written");
        assert!(notes.is_empty() && req.dry_run);
    }
}
