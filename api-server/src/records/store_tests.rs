#![allow(clippy::unwrap_used)]
use std::io::Write;

use llorch_manifests::records::{ArtifactKind, Document};

use super::*;
use crate::records::index_file;

fn plan(n: u32) -> Artifact {
    Artifact::Plan(Document {
        content: serde_json::json!({"plan": n, "pad": "x".repeat(100)}),
    })
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_same_content_is_stored_once_under_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let (id, new) = store.put(&plan(1), 1_000).unwrap();
    assert!(new);
    let (again, new_again) = store.put(&plan(1), 2_000).unwrap();
    assert_eq!(
        (again.as_str(), new_again),
        (id.as_str(), false),
        "dedupe: same id, nothing written"
    );
    let (entry, bytes) = store.get(&Lookup::Id(id.clone())).unwrap().unwrap();
    assert_eq!(entry.id, id);
    assert_eq!(format!("sha256:{}", llorch_manifests::hash::sha256_hex(&bytes)), id);
    assert_eq!(serde_json::from_slice::<Artifact>(&bytes).unwrap(), plan(1));
    assert_eq!(store.usage(), (1, bytes.len() as u64));
}

fn segment_lines(dir: &Path, seq: u32) -> usize {
    fs::read(segments::path_of(&dir.join("segments"), seq))
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn ids(store: &ArtifactStore) -> Vec<String> {
    let query = ListQuery {
        limit: 50,
        ..Default::default()
    };
    store.list(&query).items.into_iter().map(|e| e.id).collect()
}

#[test]
fn a_torn_index_line_and_a_torn_segment_tail_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let (id, _) = store.put(&plan(1), 1_000).unwrap();
    assert_eq!(files(&dir.path().join("segments")), vec!["00000000.jsonl"]);
    assert_eq!(segment_lines(dir.path(), 0), 1);
    drop(store);
    // A crash mid-append leaves half a line in the index and half an artifact in the segment.
    let append = |path: PathBuf, bytes: &[u8]| {
        let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(bytes).unwrap();
    };
    append(dir.path().join("index.jsonl"), b"{\"op\":\"put\",\"id\":\"sha2");
    append(dir.path().join("segments/00000000.jsonl"), b"{\"kind\":\"pl");
    let store = ArtifactStore::open(dir.path()).unwrap();
    assert_eq!(store.usage().0, 1);
    assert!(store.get(&Lookup::Id(id)).unwrap().is_some());
    assert_eq!(
        files(&dir.path().join("segments")),
        vec!["00000000.jsonl", "00000001.jsonl"],
        "every open starts a fresh segment"
    );
}

#[test]
fn what_the_index_misses_is_recovered_from_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    // One artifact per segment.
    let store = ArtifactStore::open_sealing_at(dir.path(), 1).unwrap();
    let (a, _) = store.put(&plan(1), 1_000).unwrap();
    let (b, _) = store.put(&plan(2), 2_000).unwrap();
    drop(store);
    // A crash after `b`'s segment sync and before its index line.
    let index = dir.path().join("index.jsonl");
    let text = fs::read_to_string(&index).unwrap();
    fs::write(&index, format!("{}\n", text.lines().next().unwrap())).unwrap();
    let store = ArtifactStore::open_sealing_at(dir.path(), 1).unwrap();
    let listed = ids(&store);
    assert_eq!(listed, vec![b.clone(), a.clone()], "newest first, both back");
    drop(store);
    // The index lost: every segment is read.
    fs::remove_file(&index).unwrap();
    let store = ArtifactStore::open_sealing_at(dir.path(), 1).unwrap();
    assert_eq!(ids(&store), vec![b.clone(), a.clone()]);
    let (entry, _) = store.get(&Lookup::Id(a.clone())).unwrap().unwrap();
    drop(store);
    // A segment removed behind the store's back drops its artifacts at the next open.
    fs::remove_file(segments::path_of(&dir.path().join("segments"), entry.at.seg)).unwrap();
    let store = ArtifactStore::open_sealing_at(dir.path(), 1).unwrap();
    assert_eq!(ids(&store), vec![b]);
    assert!(store.get(&Lookup::Id(a)).unwrap().is_none());
}

#[test]
fn an_artifact_whose_bytes_never_reached_the_disk_is_dropped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let results = store.put_all(&[(&plan(1), 1_000), (&plan(2), 2_000)]);
    let (kept, lost) = (
        results[0].as_ref().unwrap().0.clone(),
        results[1].as_ref().unwrap().0.clone(),
    );
    assert!(
        store.get(&Lookup::Id(lost.clone())).unwrap().is_some(),
        "readable before a sync"
    );
    let (entry, _) = store.get(&Lookup::Id(lost.clone())).unwrap().unwrap();
    drop(store);
    // The machine stopped before the sync: the index line is there, the bytes are zeros.
    let path = dir.path().join("segments/00000000.jsonl");
    let mut bytes = fs::read(&path).unwrap();
    let (from, to) = (entry.at.off as usize, bytes.len());
    bytes[from..to].fill(0);
    fs::write(&path, bytes).unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    assert_eq!(ids(&store), vec![kept]);
    assert!(store.get(&Lookup::Id(lost)).unwrap().is_none(), "gone, not an error");
}

#[test]
fn bytes_changed_in_a_segment_are_refused_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let (id, _) = store.put(&plan(1), 1_000).unwrap();
    let path = dir.path().join("segments/00000000.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("\"plan\":1", "\"plan\":7")).unwrap();
    let err = store.get(&Lookup::Id(id.clone())).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(&id), "{err}");
}

#[test]
fn an_earlier_versions_object_files_are_moved_into_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    fs::create_dir_all(&objects).unwrap();
    let bytes = serde_json::to_vec(&plan(3)).unwrap();
    let hex = llorch_manifests::hash::sha256_hex(&bytes);
    fs::write(objects.join(format!("{hex}.json")), &bytes).unwrap();
    fs::write(objects.join(format!("{}.json", "0".repeat(64))), &bytes).unwrap();
    // The old index's lines name no segment: they are not read as entries, only for the
    // creation time they list.
    let old_line = format!(
        "{{\"op\":\"put\",\"id\":\"sha256:{hex}\",\"kind\":\"plan\",\"job\":null,\"pool\":null,\"createdMs\":5,\"size\":{}}}\n",
        bytes.len()
    );
    fs::write(dir.path().join("index.jsonl"), old_line).unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    assert_eq!(ids(&store), vec![format!("sha256:{hex}")]);
    let listed = store.list(&ListQuery {
        limit: 1,
        ..Default::default()
    });
    assert_eq!(
        listed.items[0].created_at, "1970-01-01T00:00:00.005Z",
        "the creation time the old index listed"
    );
    let (_, stored) = store.get(&Lookup::Id(format!("sha256:{hex}"))).unwrap().unwrap();
    assert_eq!(stored, bytes);
    assert_eq!(
        files(&objects),
        vec![format!("{}.json", "0".repeat(64))],
        "the moved object is gone; one that does not match its name stays"
    );
    drop(store);
    let store = ArtifactStore::open(dir.path()).unwrap();
    assert_eq!(store.usage().0, 1, "moved once");
}

#[test]
fn garbage_collection_removes_the_oldest_first_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // One artifact per segment: a segment goes with its artifact.
    let store = ArtifactStore::open_sealing_at(dir.path(), 1).unwrap();
    let ids: Vec<String> = (0..4)
        .map(|n| store.put(&plan(n), 1_000 + i64::from(n)).unwrap().0)
        .collect();
    let size = store.usage().1 / 4;
    assert_eq!(store.collect_garbage(size * 2, 0).unwrap(), 2);
    assert!(
        store.get(&Lookup::Id(ids[0].clone())).unwrap().is_none(),
        "the oldest went first"
    );
    assert!(store.get(&Lookup::Id(ids[1].clone())).unwrap().is_none());
    assert!(store.get(&Lookup::Id(ids[3].clone())).unwrap().is_some());
    assert_eq!(
        files(&dir.path().join("segments")),
        vec!["00000002.jsonl", "00000003.jsonl"],
        "the segments of what went are removed"
    );
    assert_eq!(
        store.collect_garbage(u64::MAX, 1_003).unwrap(),
        1,
        "created before 1003"
    );
    drop(store);
    let store = ArtifactStore::open_sealing_at(dir.path(), 1).unwrap();
    assert_eq!(store.usage().0, 1);
    assert_eq!(
        store
            .list(&ListQuery {
                limit: 5,
                ..Default::default()
            })
            .items[0]
            .id,
        ids[3]
    );
}

#[test]
fn hostile_ids_are_refused_and_oversized_artifacts_too() {
    for bad in [
        "../x",
        "sha256:../../etc/passwd",
        "task-../x",
        "SHA256:ab",
        "",
        "task-a/b",
    ] {
        let err = Lookup::parse(bad).unwrap_err();
        assert!(matches!(err, StoreError::InvalidId(_)), "{bad}: {err}");
    }
    assert_eq!(Lookup::parse("task-1a2b-3").unwrap(), Lookup::Job("task-1a2b-3".into()));
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let huge = Artifact::Diff(Document {
        content: serde_json::Value::String("x".repeat(MAX_ARTIFACT_BYTES)),
    });
    assert!(matches!(store.put(&huge, 0), Err(StoreError::TooLarge { .. })));
    assert_eq!(store.usage().0, 0);
    assert_eq!(huge.kind(), ArtifactKind::Diff);
}

#[test]
fn a_group_write_gives_one_result_per_artifact_in_order_and_one_index_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let (stored, _) = store.put(&plan(0), 500).unwrap();
    let index = dir.path().join("index.jsonl");
    let lines_before = fs::read_to_string(&index).unwrap().lines().count();
    let huge = Artifact::Diff(Document {
        content: serde_json::Value::String("x".repeat(MAX_ARTIFACT_BYTES)),
    });
    let (one, two) = (plan(1), plan(2));
    let results = store.put_all(&[
        (&plan(0), 600),
        (&one, 1_000),
        (&huge, 1_100),
        (&two, 1_200),
        (&one, 1_300),
    ]);
    assert_eq!(results.len(), 5);
    assert_eq!(results[0].as_ref().unwrap(), &(stored, false), "stored before: not new");
    let (id1, new1) = results[1].as_ref().unwrap().clone();
    assert!(new1);
    assert!(matches!(results[2], Err(StoreError::TooLarge { .. })));
    let (id2, new2) = results[3].as_ref().unwrap().clone();
    assert!(new2 && id2 != id1);
    assert_eq!(
        results[4].as_ref().unwrap(),
        &(id1.clone(), false),
        "the same bytes twice in one group: one object, the second is not new"
    );
    assert_eq!(
        fs::read_to_string(&index).unwrap().lines().count(),
        lines_before + 2,
        "one index line per new object"
    );
    assert_eq!(segment_lines(dir.path(), 0), 3, "one line per new artifact");
    drop(store);
    let store = ArtifactStore::open(dir.path()).unwrap();
    assert_eq!(store.usage().0, 3);
    for id in [id1, id2] {
        let (entry, bytes) = store.get(&Lookup::Id(id.clone())).unwrap().unwrap();
        assert_eq!(format!("sha256:{}", llorch_manifests::hash::sha256_hex(&bytes)), id);
        assert_eq!(entry.size, bytes.len() as u64);
    }
}

#[test]
fn retention_keeps_the_disk_within_one_segment_of_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let one = serde_json::to_vec(&plan(0)).unwrap().len() as u64 + 1;
    let (max_bytes, seal_at) = (one * 20, one * 4);
    let store = ArtifactStore::open_sealing_at(dir.path(), seal_at).unwrap();
    for n in 0..200 {
        store.put_all(&[(&plan(n), i64::from(n))]);
        store.collect_garbage(max_bytes, 0).unwrap();
        let on_disk: u64 = fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(
            on_disk <= max_bytes + seal_at + one,
            "after {n}: {on_disk} bytes on disk for {max_bytes} kept"
        );
    }
    assert!(store.usage().1 <= max_bytes);
}

#[test]
fn the_index_file_is_compacted_while_the_store_runs() {
    let dir = tempfile::tempdir().unwrap();
    let one = serde_json::to_vec(&plan(0)).unwrap().len() as u64 + 1;
    let store = ArtifactStore::open(dir.path()).unwrap();
    let index_file = dir.path().join("index.jsonl");
    let mut largest = 0;
    let mut compacted = false;
    // Each round appends 20 `put` lines and retention about as many `del` lines: ~3 MiB of
    // appends in all, for about 20 artifacts kept.
    for round in 0..200u32 {
        let group: Vec<Artifact> = (0..20).map(|i| plan(round * 20 + i)).collect();
        let refs: Vec<(&Artifact, i64)> = group.iter().map(|a| (a, i64::from(round))).collect();
        store.put_all(&refs);
        store.collect_garbage(one * 20, 0).unwrap();
        let size = fs::metadata(&index_file).unwrap().len();
        compacted |= size < largest;
        largest = largest.max(size);
    }
    assert!(compacted, "the index was never rewritten");
    assert!(
        largest <= 2 * index_file::COMPACT_AT_LEAST,
        "index.jsonl reached {largest} bytes for 20 artifacts kept"
    );
    // What it holds after compactions and later appends reads back to the same store.
    let kept = ids(&store);
    assert!(kept.len() >= 10, "{} kept", kept.len());
    drop(store);
    let reopened = ArtifactStore::open(dir.path()).unwrap();
    assert_eq!(ids(&reopened), kept);
}
