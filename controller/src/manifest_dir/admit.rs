//! The config's trust checks, made when a manifest arrives through the daemon's write API
//! instead of only when the controller acts on it: a `binary` Engine whose executable config
//! does not allow, or a Model `file:` reference outside `models.fileRoots`, is refused before
//! anything is written. The words and the rules are the controller's own
//! ([`binary_refusal`](crate::provision::binary_refusal), [`FileRoots::check`]); the controller
//! still checks every object it acts on, however it arrived.

use std::path::Path;

use llorch_manifests::config::ProvisioningPolicy;
use llorch_manifests::{AnyObject, Provisioning};

use crate::models::FileRoots;
use crate::provision::binary_refusal;
use crate::runtime::process::resolve;

/// What the write API checks objects against: the daemon's config.
#[derive(Clone, Debug, Default)]
pub struct TrustRoot {
    /// `provisioning` (which programs `binary` Engines may run).
    pub provisioning: ProvisioningPolicy,
    /// `models.fileRoots`.
    pub file_roots: FileRoots,
}

impl TrustRoot {
    /// Why `object` may not be written, or `None`. A relative `file:` reference is refused
    /// too: it would resolve against the daemon's manifests directory, not the client's folder.
    pub fn refusal(&self, object: &AnyObject) -> Option<String> {
        match object {
            AnyObject::Engine(engine) if engine.spec.provisioning == Provisioning::Binary => {
                let exe = engine.spec.executable.as_deref().unwrap_or_default();
                let path = resolve::which(exe).unwrap_or_else(|_| exe.into());
                binary_refusal(&self.provisioning, &path).map(|why| format!("engine `{}`: {why}", engine.name()))
            }
            AnyObject::Model(model) => {
                let path = model.spec.reference.strip_prefix("file:")?;
                if !Path::new(path).is_absolute() {
                    return Some(format!(
                        "model `{}`: `ref: file:{path}` is relative, and through the API it would resolve \
                         against the daemon's manifests directory, not your folder; write the absolute \
                         path of the file on the daemon's machine",
                        model.name()
                    ));
                }
                let path = super::apply::normalize(Path::new(path));
                self.file_roots
                    .check(&path)
                    .err()
                    .map(|why| format!("model `{}`: {why}", model.name()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn object(text: &str) -> AnyObject {
        llorch_manifests::parse_file("t.yaml", text.as_bytes()).unwrap()[0]
            .object
            .clone()
    }

    const BINARY: &str = "apiVersion: llama-orch.dev/v1alpha1\nkind: Engine\nmetadata:\n  name: sh\nspec:\n  provisioning: binary\n  version: x\n  api: llamacpp\n  executable: /bin/sh\n  args: [\"{model_path}\", \"{port}\"]\n";

    #[test]
    fn binaries_need_config_and_files_need_a_root() {
        let tmp = tempfile::tempdir().unwrap();
        let trust = TrustRoot {
            provisioning: ProvisioningPolicy::default(),
            file_roots: FileRoots::under([tmp.path().to_path_buf()]),
        };
        let why = trust.refusal(&object(BINARY)).unwrap();
        assert!(why.contains("allowedExecutables"), "{why}");
        let mut allowed = trust.clone();
        allowed.provisioning.allowed_executables = vec!["/bin/sh".into()];
        assert_eq!(allowed.refusal(&object(BINARY)), None);

        let model = |r: &str| {
            object(&format!(
                "apiVersion: llama-orch.dev/v1alpha1\nkind: Model\nmetadata:\n  name: m\nspec:\n  ref: {r}\n  ctxMax: 4096\n"
            ))
        };
        assert!(trust.refusal(&model("file:/etc/shadow")).unwrap().contains("fileRoots"));
        let escape = format!("file:{}/../../etc/shadow", tmp.path().display());
        assert!(trust.refusal(&model(&escape)).unwrap().contains("fileRoots"));
        assert_eq!(
            trust.refusal(&model(&format!("file:{}/m.gguf", tmp.path().display()))),
            None
        );
        assert!(trust.refusal(&model("file:m.gguf")).unwrap().contains("relative"));
        assert_eq!(trust.refusal(&model("hf:org/repo/m.gguf")), None);
    }
}
