//! The merge rule and the API's changes, branch by branch.

use super::*;

fn file_backend(port: u16, id: &str) -> BackendConfig {
    BackendConfig {
        id: Some(id.into()),
        ..BackendConfig::at(format!("http://127.0.0.1:{port}"))
    }
}

fn ids(merged: &Merged) -> Vec<&str> {
    merged.backends.iter().map(|b| b.id.as_str()).collect()
}

fn file() -> Vec<BackendConfig> {
    vec![file_backend(1, "a"), file_backend(2, "b")]
}

#[test]
fn no_changes_is_the_file() {
    let merged = RuntimeChanges::new().merge(&file());
    assert_eq!(ids(&merged), ["a", "b"]);
    assert!(merged.cleared.is_empty());
    assert!(merged.backends.iter().all(|b| b.source == Source::Config));
}

#[test]
fn added_backends_follow_the_files_and_survive_a_reload_that_keeps_them_out() {
    let mut changes = RuntimeChanges::new();
    changes.add(file_backend(3, "c"), &["a", "b"]).unwrap();
    let merged = changes.merge(&file());
    assert_eq!(ids(&merged), ["a", "b", "c"]);
    assert_eq!(merged.backends[2].source, Source::Api);
    // The file changed elsewhere (a backend added): the API's backend stays.
    let mut edited = file();
    edited.push(file_backend(4, "d"));
    assert_eq!(ids(&changes.merge(&edited)), ["a", "b", "d", "c"]);
}

#[test]
fn an_added_id_that_is_taken_is_a_conflict() {
    let mut changes = RuntimeChanges::new();
    let err = changes.add(file_backend(9, "a"), &["a", "b"]).unwrap_err();
    assert!(matches!(err, ChangeError::Conflict(_)));
    assert!(changes.is_empty());
}

#[test]
fn an_id_the_file_takes_over_drops_the_added_backend() {
    let mut changes = RuntimeChanges::new();
    changes.add(file_backend(3, "c"), &["a", "b"]).unwrap();
    let mut edited = file();
    edited.push(file_backend(5, "c"));
    let merged = changes.merge(&edited);
    assert_eq!(ids(&merged), ["a", "b", "c"]);
    assert_eq!(merged.backends[2].backend.url, "http://127.0.0.1:5");
    assert_eq!(merged.backends[2].source, Source::Config);
    assert!(merged.changes.added.is_empty());
    assert_eq!(merged.cleared.len(), 1, "{:?}", merged.cleared);
}

#[test]
fn an_override_applies_while_the_file_entry_is_unchanged() {
    let mut changes = RuntimeChanges::new();
    let patch = Patch {
        weight: Some(5),
        labels: Some([("pool".to_string(), "canary".to_string())].into()),
        drain: Some(true),
    };
    changes.patch("b", &patch, &file()).unwrap();
    let merged = changes.merge(&file());
    let b = &merged.backends[1];
    assert_eq!((b.backend.weight, b.drain), (5, true));
    assert_eq!(b.backend.labels["pool"], "canary");
    assert_eq!(merged.changes, changes);
    // A reload with an edit elsewhere in the file keeps it.
    let mut edited = file();
    edited[0].weight = 7;
    assert_eq!(changes.merge(&edited).backends[1].backend.weight, 5);
}

#[test]
fn a_file_edit_of_an_overridden_backend_wins_and_clears_the_override() {
    let mut changes = RuntimeChanges::new();
    let patch = Patch {
        weight: Some(5),
        drain: Some(true),
        ..Patch::default()
    };
    changes.patch("b", &patch, &file()).unwrap();
    let mut edited = file();
    edited[1].weight = 3;
    let merged = changes.merge(&edited);
    let b = &merged.backends[1];
    assert_eq!((b.backend.weight, b.drain), (3, false));
    assert!(merged.changes.overrides.is_empty());
    assert_eq!(merged.cleared.len(), 1);
}

#[test]
fn an_override_that_restores_the_file_is_dropped() {
    let mut changes = RuntimeChanges::new();
    let drain = |on| Patch {
        drain: Some(on),
        ..Patch::default()
    };
    changes.patch("a", &drain(true), &file()).unwrap();
    assert_eq!(changes.overrides.len(), 1);
    changes.patch("a", &drain(false), &file()).unwrap();
    assert!(changes.is_empty());
}

#[test]
fn a_removed_file_backend_stays_removed_until_the_file_changes_it() {
    let mut changes = RuntimeChanges::new();
    changes.remove("a", &file()).unwrap();
    assert_eq!(ids(&changes.merge(&file())), ["b"]);
    assert!(matches!(
        changes.remove("a", &file()),
        Err(ChangeError::NotFound(_))
    ));
    let mut edited = file();
    edited[0].url = "http://127.0.0.1:11".into();
    let merged = changes.merge(&edited);
    assert_eq!(ids(&merged), ["a", "b"]);
    assert!(merged.changes.removed.is_empty());
    assert_eq!(merged.cleared.len(), 1);
}

#[test]
fn changes_to_backends_gone_from_the_file_are_cleared() {
    let mut changes = RuntimeChanges::new();
    changes.remove("a", &file()).unwrap();
    let patch = Patch {
        weight: Some(9),
        ..Patch::default()
    };
    changes.patch("b", &patch, &file()).unwrap();
    let merged = changes.merge(&[file_backend(3, "c")]);
    assert_eq!(ids(&merged), ["c"]);
    assert!(merged.changes.is_empty());
    assert_eq!(merged.cleared.len(), 2, "{:?}", merged.cleared);
}

#[test]
fn removing_an_added_backend_forgets_it() {
    let mut changes = RuntimeChanges::new();
    changes.add(file_backend(3, "c"), &["a", "b"]).unwrap();
    changes.remove("c", &file()).unwrap();
    assert!(changes.is_empty());
}

#[test]
fn patching_an_added_backend_changes_it_in_place() {
    let mut changes = RuntimeChanges::new();
    changes.add(file_backend(3, "c"), &["a", "b"]).unwrap();
    let patch = Patch {
        weight: Some(4),
        drain: Some(true),
        ..Patch::default()
    };
    changes.patch("c", &patch, &file()).unwrap();
    let merged = changes.merge(&file());
    assert_eq!(
        (merged.backends[2].backend.weight, merged.backends[2].drain),
        (4, true)
    );
    assert!(changes.overrides.is_empty());
    assert!(matches!(
        changes.patch("zz", &patch, &file()),
        Err(ChangeError::NotFound(_))
    ));
}

#[test]
fn ids_default_to_host_and_port() {
    let mut changes = RuntimeChanges::new();
    changes
        .add(BackendConfig::at("http://127.0.0.1:7"), &[])
        .unwrap();
    assert_eq!(changes.added[0].backend.id.as_deref(), Some("127.0.0.1:7"));
}
