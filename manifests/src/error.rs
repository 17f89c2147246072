//! `ManifestError`: one problem with one manifest, located as precisely as the input allows
//! (file, document index, object, field path) and phrased as what is wrong plus what to do.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Kind;

/// One problem found in a manifest file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestError {
    /// The file, as the caller named it.
    pub file: String,
    /// Zero-based index of the YAML document in the file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// Line (1-based) in the file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The object's kind, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// The object's name, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Dotted field path, e.g. `spec.replicas` or `spec.gpus[1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
}

/// Bytes of an object's name kept in an error (an invalid name can be anything).
const MAX_NAME_SHOWN: usize = 64;

impl ManifestError {
    /// An error about the whole file.
    pub fn file(file: impl Into<String>, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            document: None,
            line: None,
            kind: None,
            name: None,
            field: None,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Sets the document index.
    pub fn in_document(mut self, index: usize) -> Self {
        self.document = Some(index);
        self
    }

    /// Sets the object.
    pub fn on_object(mut self, kind: Option<Kind>, name: Option<String>) -> Self {
        self.kind = kind;
        // A name that fails validation can be anything; only its start is kept.
        self.name = name.map(|n| crate::text::cut(n, MAX_NAME_SHOWN));
        self
    }

    /// Sets the field path.
    pub fn at_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = if field.is_empty() || field == "." {
            None
        } else {
            Some(field)
        };
        self
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(doc) = self.document {
            write!(f, ": document {doc}")?;
        }
        match (&self.kind, &self.name) {
            (Some(k), Some(n)) => write!(f, " ({}/{n})", k.lower())?,
            (Some(k), None) => write!(f, " ({})", k.lower())?,
            (None, Some(n)) => write!(f, " ({n})")?,
            (None, None) => {}
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, " — {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}
