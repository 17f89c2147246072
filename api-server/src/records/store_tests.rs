#![allow(clippy::unwrap_used)]
use llorch_manifests::records::{ArtifactKind, Document};

use super::*;

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

#[test]
fn writes_leave_no_temporary_file_and_a_torn_index_line_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let (id, _) = store.put(&plan(1), 1_000).unwrap();
    let objects = files(&dir.path().join("objects"));
    assert_eq!(objects, vec![format!("{}.json", id.trim_start_matches("sha256:"))]);
    drop(store);
    // A crash mid-append leaves half a line; a stray temporary file is not an object.
    let mut index = fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("index.jsonl"))
        .unwrap();
    index.write_all(b"{\"op\":\"put\",\"id\":\"sha2").unwrap();
    fs::write(dir.path().join("objects/.x.json.tmp-1-1"), b"{").unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    assert_eq!(store.usage().0, 1);
    assert!(store.get(&Lookup::Id(id)).unwrap().is_some());
}

#[test]
fn the_index_is_rebuilt_from_the_objects_when_it_is_lost_or_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let (a, _) = store.put(&plan(1), 1_000).unwrap();
    let (b, _) = store.put(&plan(2), 2_000).unwrap();
    drop(store);
    fs::remove_file(dir.path().join("index.jsonl")).unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
    let listed: Vec<_> = store
        .list(&ListQuery {
            limit: 10,
            ..Default::default()
        })
        .items
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&a) && listed.contains(&b));
    // An object removed behind the store's back drops out of the index at the next open.
    fs::remove_file(
        dir.path()
            .join(format!("objects/{}.json", a.trim_start_matches("sha256:"))),
    )
    .unwrap();
    drop(store);
    let store = ArtifactStore::open(dir.path()).unwrap();
    assert_eq!(store.usage().0, 1);
    assert!(store.get(&Lookup::Id(a)).unwrap().is_none());
}

#[test]
fn garbage_collection_removes_the_oldest_first_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path()).unwrap();
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
        store.collect_garbage(u64::MAX, 1_003).unwrap(),
        1,
        "created before 1003"
    );
    drop(store);
    let store = ArtifactStore::open(dir.path()).unwrap();
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
    let objects = files(&dir.path().join("objects"));
    assert_eq!(objects.len(), 3, "no temporary file is left: {objects:?}");
    drop(store);
    let store = ArtifactStore::open(dir.path()).unwrap();
    assert_eq!(store.usage().0, 3);
    for id in [id1, id2] {
        let (entry, bytes) = store.get(&Lookup::Id(id.clone())).unwrap().unwrap();
        assert_eq!(format!("sha256:{}", llorch_manifests::hash::sha256_hex(&bytes)), id);
        assert_eq!(entry.size, bytes.len() as u64);
    }
}
