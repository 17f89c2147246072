//! What the artifact store finds on disk when it opens: `index.jsonl` read back and checked
//! against the segments (an entry whose segment is gone or too short is dropped, and so is one
//! in the newest segment whose bytes do not hash to its id: a machine crash before a sync),
//! the lines the newest segment holds past its last indexed one (a crash after the append and
//! before the index line), every segment's lines when the index is lost, and the
//! one-file-per-artifact `objects/` directory of earlier versions, moved into segments once.
//!
//! Blocking file I/O, at open only.

use std::collections::HashMap;
use std::fs;
use std::io::BufRead;
use std::path::Path;

use llorch_manifests::records::{Artifact, ID_PREFIX, MAX_ARTIFACT_BYTES, is_artifact_id};

use super::index::{Index, IndexEntry};
use super::index_file::IndexLine;
use super::segments::{self, Location};
use super::store::{ArtifactStore, entry_of};

/// Largest `index.jsonl` read at open; a larger one is rebuilt from the segments.
const MAX_INDEX_BYTES: u64 = 256 << 20;

/// The index as the disk has it.
pub struct Found {
    /// Every artifact whose bytes are there.
    pub index: Index,
    /// The entries found in segments but not in `index.jsonl` (already in `index`).
    pub recovered: Vec<IndexEntry>,
}

/// Reads `index_file` back against the segments `existing` in `seg_dir` (see the module).
pub fn read_back(seg_dir: &Path, index_file: &Path, existing: &[u32]) -> Found {
    let lengths: HashMap<u32, u64> = existing
        .iter()
        .filter_map(|&seq| Some((seq, fs::metadata(segments::path_of(seg_dir, seq)).ok()?.len())))
        .collect();
    let mut index = Index::default();
    let lines = read_index(index_file);
    // How far each segment was indexed, counting entries deleted since.
    let mut indexed_end: HashMap<u32, u64> = HashMap::new();
    for line in lines.iter().flatten() {
        match line {
            IndexLine::Put(e) => {
                let end = e.at.off + e.size + 1;
                let seen = indexed_end.entry(e.at.seg).or_default();
                *seen = (*seen).max(end);
                if lengths.get(&e.at.seg).is_some_and(|&len| end <= len) {
                    index.insert(e.clone());
                }
            }
            IndexLine::Del { id } => {
                index.remove(id);
            }
        }
    }
    if let Some(&newest) = existing.last() {
        drop_unwritten(seg_dir, newest, &mut index);
    }
    let to_scan: Vec<(u32, u64)> = match lines {
        // Only the newest segment was appended to after the index's last line.
        Some(_) => existing
            .last()
            .map(|&seq| (seq, indexed_end.get(&seq).copied().unwrap_or(0)))
            .into_iter()
            .collect(),
        None => existing.iter().map(|&seq| (seq, 0)).collect(),
    };
    let mut recovered = Vec::new();
    for (seq, from) in to_scan {
        let lines = match segments::scan(seg_dir, seq, from) {
            Ok(lines) => lines,
            Err(e) => {
                tracing::warn!(segment = %segments::path_of(seg_dir, seq).display(), error = %e, "cannot read a segment; what it holds past the index is not recovered");
                continue;
            }
        };
        let modified = modified_ms(&segments::path_of(seg_dir, seq));
        for line in lines {
            if let Some(entry) = entry_of_line(&line.bytes, line.at, modified)
                && index.insert(entry.clone())
            {
                recovered.push(entry);
            }
        }
    }
    if !recovered.is_empty() {
        tracing::info!(
            artifacts = recovered.len(),
            "artifacts found in segments but not in index.jsonl were indexed again"
        );
    }
    Found { index, recovered }
}

/// Drops the entries of segment `seq` whose bytes are not theirs. Only the newest segment
/// can hold such entries: its appends are synced after they are indexed, so a crash of the
/// machine in between leaves index lines whose bytes never reached the disk.
fn drop_unwritten(seg_dir: &Path, seq: u32, index: &mut Index) {
    use std::os::unix::fs::FileExt;
    let entries: Vec<(String, Location, u64)> = index
        .entries()
        .filter(|e| e.at.seg == seq)
        .map(|e| (e.id.clone(), e.at, e.size))
        .collect();
    if entries.is_empty() {
        return;
    }
    let file = fs::File::open(segments::path_of(seg_dir, seq)).ok();
    let mut dropped = 0;
    for (id, at, size) in entries {
        let mut bytes = vec![0; size as usize];
        let intact = file
            .as_ref()
            .is_some_and(|f| f.read_exact_at(&mut bytes, at.off).is_ok())
            && llorch_manifests::hash::sha256_hex(&bytes) == id.trim_start_matches(ID_PREFIX);
        if !intact {
            index.remove(&id);
            dropped += 1;
        }
    }
    if dropped > 0 {
        tracing::warn!(
            segment = %segments::path_of(seg_dir, seq).display(),
            artifacts = dropped,
            "artifacts whose bytes never reached the disk (the machine stopped before a sync) are dropped"
        );
    }
}

/// The lines of `index.jsonl` that parse, in order (a torn last line is skipped); `None` when
/// there is no index or it is too large to be one.
fn read_index(path: &Path) -> Option<Vec<IndexLine>> {
    let lines = index_lines::<IndexLine>(path);
    if lines.is_none() && path.exists() {
        tracing::warn!(file = %path.display(), "the artifact index is too large or unreadable; it is rebuilt from the segments");
    }
    let mut lines = lines?;
    lines.retain(|l| match l {
        IndexLine::Put(e) => is_artifact_id(&e.id),
        IndexLine::Del { .. } => true,
    });
    Some(lines)
}

/// The lines of the index file at `path` that parse as `T`, in order; `None` when there is
/// no such file or it is larger than [`MAX_INDEX_BYTES`].
fn index_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Option<Vec<T>> {
    let file = fs::File::open(path).ok()?;
    if file.metadata().is_ok_and(|m| m.len() > MAX_INDEX_BYTES) {
        return None;
    }
    let lines = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect();
    Some(lines)
}

/// The entry of the artifact whose bytes are `bytes` at `at`: its id is their sha256; its
/// creation time a job's admission, else `fallback_ms`. `None` when the bytes are no artifact.
fn entry_of_line(bytes: &[u8], at: Location, fallback_ms: i64) -> Option<IndexEntry> {
    let artifact: Artifact = serde_json::from_slice(bytes).ok()?;
    let id = format!("{ID_PREFIX}{}", llorch_manifests::hash::sha256_hex(bytes));
    let created_ms = created_of(&artifact).unwrap_or(fallback_ms);
    Some(entry_of(&artifact, id, at, created_ms, bytes.len() as u64))
}

/// A job's admission time.
fn created_of(artifact: &Artifact) -> Option<i64> {
    match artifact {
        Artifact::Job(job) => job
            .created_at
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond()),
        _ => None,
    }
}

fn modified_ms(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .map(super::ms_of)
        .unwrap_or(0)
}

/// Moves the artifacts of an earlier version's `objects/<hex>.json` files into `store`, then
/// removes those files and the directory once it is empty. A file that is no artifact or
/// does not match its name is left where it is; when the move fails, everything stays for the
/// next open.
pub fn import_legacy(store: &ArtifactStore, objects: &Path, index_file: &Path) {
    let Ok(dir) = fs::read_dir(objects) else { return };
    let listed = legacy_created(index_file);
    let mut found = Vec::new();
    let mut moved = Vec::new();
    for entry in dir.filter_map(|e| e.ok()) {
        let path = entry.path();
        if let Some((artifact, bytes)) = legacy_object(&path) {
            let id = format!("{ID_PREFIX}{}", llorch_manifests::hash::sha256_hex(&bytes));
            let created = listed
                .get(&id)
                .copied()
                .or_else(|| created_of(&artifact))
                .unwrap_or_else(|| modified_ms(&path));
            found.push((artifact, bytes, created));
            moved.push(path);
        }
    }
    let total = found.len();
    if let Err(e) = store.put_encoded(found) {
        tracing::warn!(dir = %objects.display(), error = %e, "cannot move artifacts into segments; they are moved at the next start");
        return;
    }
    for path in &moved {
        let _ = fs::remove_file(path);
    }
    match fs::remove_dir(objects) {
        Ok(()) => tracing::info!(artifacts = total, "artifacts moved from objects/ into segments"),
        Err(_) => {
            tracing::warn!(artifacts = total, dir = %objects.display(), "artifacts moved into segments; the directory keeps files that are no artifact (remove them by hand)")
        }
    }
}

/// The creation times an earlier version's `index.jsonl` lists (its lines name no segment, so
/// they are not read as entries), by id.
fn legacy_created(index_file: &Path) -> HashMap<String, i64> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Listed {
        op: String,
        id: String,
        created_ms: i64,
    }
    index_lines::<Listed>(index_file)
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.op == "put")
        .map(|l| (l.id, l.created_ms))
        .collect()
}

/// The artifact in a legacy object file, when its bytes are one and match its name.
fn legacy_object(path: &Path) -> Option<(Artifact, Vec<u8>)> {
    let hex = path.file_name()?.to_str()?.strip_suffix(".json")?;
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_ARTIFACT_BYTES as u64 || !is_artifact_id(&format!("{ID_PREFIX}{hex}")) {
        return None;
    }
    let bytes = fs::read(path).ok()?;
    if llorch_manifests::hash::sha256_hex(&bytes) != hex {
        tracing::warn!(file = %path.display(), "artifact does not match its name; not moved");
        return None;
    }
    let artifact = serde_json::from_slice(&bytes).ok()?;
    Some((artifact, bytes))
}
