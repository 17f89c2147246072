//! The YAML form of a manifest as writers store it (`orchctl apply`, the daemon's write API)
//! and `diff` compares it: every field, defaults included.

use crate::AnyObject;

/// `object` as YAML, ending in a newline.
pub fn manifest_yaml(object: &AnyObject) -> Result<String, String> {
    let mut text =
        serde_saphyr::to_string(object).map_err(|e| format!("cannot encode {} as YAML: {e}", object.object_ref()))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `object` as YAML with its secrets shown as `<redacted>` (what API answers carry).
pub fn redacted_yaml(object: &AnyObject) -> Result<String, String> {
    let json = serde_json::to_value(object).map_err(|e| format!("cannot encode {}: {e}", object.object_ref()))?;
    let redacted: AnyObject = serde_json::from_value(crate::secrets::redact_manifest(json))
        .map_err(|e| format!("cannot re-read {} after redaction: {e}", object.object_ref()))?;
    manifest_yaml(&redacted)
}
