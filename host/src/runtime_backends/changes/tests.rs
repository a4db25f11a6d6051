//! The merge rule and the API's changes, branch by branch, and the whole matrix of a file
//! backend × API add/patch/delete × reload × restart.

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
    changes
        .add(file_backend(3, "c").into(), &["a", "b"], &file())
        .unwrap();
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
    let err = changes
        .add(file_backend(9, "a").into(), &["a", "b"], &file())
        .unwrap_err();
    assert!(matches!(err, ChangeError::Conflict(_)));
    assert!(changes.is_empty());
}

#[test]
fn an_id_the_file_takes_over_drops_the_added_backend() {
    let mut changes = RuntimeChanges::new();
    changes
        .add(file_backend(3, "c").into(), &["a", "b"], &file())
        .unwrap();
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
    changes
        .add(file_backend(3, "c").into(), &["a", "b"], &file())
        .unwrap();
    changes.remove("c", &file()).unwrap();
    assert!(changes.is_empty());
}

#[test]
fn patching_an_added_backend_changes_it_in_place() {
    let mut changes = RuntimeChanges::new();
    changes
        .add(file_backend(3, "c").into(), &["a", "b"], &file())
        .unwrap();
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
        .add(BackendConfig::at("http://127.0.0.1:7").into(), &[], &[])
        .unwrap();
    assert_eq!(changes.added[0].backend.id.as_deref(), Some("127.0.0.1:7"));
}

/// A body that set only `fields` (the others at their defaults).
fn posted(backend: BackendConfig, fields: &[&str]) -> Posted {
    Posted {
        backend,
        given: Some(fields.iter().map(|f| f.to_string()).collect()),
    }
}

/// The file's entry `a`, posted again as it is.
fn a_again() -> Posted {
    posted(file_backend(1, "a"), &["url", "id"])
}

/// What a restart sees: the state file's JSON read back.
fn restarted(changes: &RuntimeChanges) -> RuntimeChanges {
    serde_json::from_str(&serde_json::to_string(changes).unwrap()).unwrap()
}

#[test]
fn posting_a_removed_file_backend_again_undoes_the_removal() {
    let mut changes = RuntimeChanges::new();
    changes.remove("a", &file()).unwrap();
    let outcome = changes.add(a_again(), &["b"], &file()).unwrap();
    assert_eq!(outcome, Outcome::Restored);
    assert!(changes.is_empty(), "nothing left to re-apply: {changes:?}");
    let merged = changes.merge(&file());
    assert_eq!(ids(&merged), ["a", "b"], "back in the file's order");
    assert_eq!(merged.backends[0].source, Source::Config);
    assert!(merged.cleared.is_empty(), "{:?}", merged.cleared);
}

#[test]
fn a_restored_backend_takes_the_files_values_for_what_the_body_leaves_out() {
    let mut entry = file_backend(1, "a");
    entry.weight = 3;
    entry.labels = [("pool".to_string(), "api".to_string())].into();
    entry.health.path = Some("/healthz".into());
    let file = vec![entry.clone(), file_backend(2, "b")];
    let mut changes = RuntimeChanges::new();
    changes.remove("a", &file).unwrap();
    changes.add(a_again(), &["b"], &file).unwrap();
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(changes.merge(&file).backends[0].backend, entry);
}

#[test]
fn a_restored_backend_keeps_a_posted_weight_and_labels_as_an_override() {
    let mut changes = RuntimeChanges::new();
    changes.remove("a", &file()).unwrap();
    let mut body = file_backend(1, "a");
    body.weight = 4;
    body.labels = [("pool".to_string(), "canary".to_string())].into();
    let outcome = changes
        .add(
            posted(body, &["url", "id", "weight", "labels"]),
            &["b"],
            &file(),
        )
        .unwrap();
    assert_eq!(outcome, Outcome::Restored);
    assert!(changes.removed.is_empty());
    assert_eq!(changes.overrides.len(), 1);
    let merged = changes.merge(&file());
    let a = &merged.backends[0];
    assert_eq!((a.id.as_str(), a.backend.weight, a.drain), ("a", 4, false));
    assert_eq!(a.backend.labels["pool"], "canary");
    assert_eq!(a.source, Source::Config);
}

#[test]
fn a_restored_backend_is_not_drained_by_a_drain_made_before_its_removal() {
    let mut changes = RuntimeChanges::new();
    let drain = Patch {
        drain: Some(true),
        ..Patch::default()
    };
    changes.patch("a", &drain, &file()).unwrap();
    changes.remove("a", &file()).unwrap();
    changes.add(a_again(), &["b"], &file()).unwrap();
    assert!(!changes.merge(&file()).backends[0].drain);
}

#[test]
fn posting_a_removed_file_backend_with_what_an_override_cannot_hold_is_a_conflict() {
    let mut changes = RuntimeChanges::new();
    changes.remove("a", &file()).unwrap();
    let before = changes.clone();
    let elsewhere = posted(file_backend(9, "a"), &["url", "id"]);
    let Err(ChangeError::Conflict(text)) = changes.add(elsewhere, &["b"], &file()) else {
        panic!("another address is refused");
    };
    assert!(
        text.contains("url") && text.contains("http://127.0.0.1:1"),
        "{text}"
    );
    let mut checked = file_backend(1, "a");
    checked.health.path = Some("/healthz".into());
    let Err(ChangeError::Conflict(text)) =
        changes.add(posted(checked, &["url", "id", "health"]), &["b"], &file())
    else {
        panic!("other health settings are refused");
    };
    assert!(text.contains("health"), "{text}");
    assert_eq!(changes, before, "nothing changed");
    // The same address written differently is the same backend.
    let mut spelled = file_backend(1, "a");
    spelled.url = "HTTP://127.0.0.1:1/".into();
    let outcome = changes.add(posted(spelled, &["url", "id"]), &["b"], &file());
    assert_eq!(outcome, Ok(Outcome::Restored));
}

#[test]
fn posting_a_file_backend_in_force_is_a_conflict_that_names_the_file() {
    let mut changes = RuntimeChanges::new();
    let Err(ChangeError::Conflict(text)) = changes.add(a_again(), &["a", "b"], &file()) else {
        panic!("taken");
    };
    assert!(text.contains("config file"), "{text}");
    assert!(changes.is_empty());
}

#[test]
fn an_added_backend_whose_file_entry_is_removed_is_not_said_to_be_in_force() {
    // Only a state file written by hand holds both; the log must not claim the file's entry
    // serves.
    let mut changes = RuntimeChanges::new();
    changes.remove("a", &file()).unwrap();
    changes.added.push(Added {
        backend: file_backend(1, "a"),
        drain: false,
    });
    let merged = changes.merge(&file());
    assert_eq!(ids(&merged), ["b"]);
    assert!(
        merged.cleared[0].contains("neither is in force"),
        "{:?}",
        merged.cleared
    );
}

fn weight(w: u32) -> Patch {
    Patch {
        weight: Some(w),
        ..Patch::default()
    }
}

/// One API change to file backend `a`, and how `a` is in force after it (`None`: not at all).
struct Case {
    name: &'static str,
    apply: fn(&mut RuntimeChanges),
    expect: Option<(u32, bool)>,
}

#[test]
fn every_api_change_to_a_file_backend_survives_reload_and_restart_until_the_file_edits_it() {
    let cases = [
        Case {
            name: "patch",
            apply: |c| {
                let patch = Patch {
                    weight: Some(5),
                    drain: Some(true),
                    ..Patch::default()
                };
                c.patch("a", &patch, &file()).unwrap();
            },
            expect: Some((5, true)),
        },
        Case {
            name: "delete",
            apply: |c| c.remove("a", &file()).unwrap(),
            expect: None,
        },
        Case {
            name: "delete, then post again",
            apply: |c| {
                c.remove("a", &file()).unwrap();
                c.add(a_again(), &["b"], &file()).unwrap();
            },
            expect: Some((1, false)),
        },
        Case {
            name: "delete, then post again with another weight",
            apply: |c| {
                c.remove("a", &file()).unwrap();
                let mut body = file_backend(1, "a");
                body.weight = 7;
                c.add(posted(body, &["url", "weight"]), &["b"], &file())
                    .unwrap();
            },
            expect: Some((7, false)),
        },
        Case {
            name: "patch, delete, post again, patch",
            apply: |c| {
                c.patch("a", &weight(2), &file()).unwrap();
                c.remove("a", &file()).unwrap();
                c.add(a_again(), &["b"], &file()).unwrap();
                c.patch("a", &weight(6), &file()).unwrap();
            },
            expect: Some((6, false)),
        },
    ];
    let a_of = |merged: &Merged| {
        merged
            .backends
            .iter()
            .find(|b| b.id == "a")
            .map(|a| (a.backend.weight, a.drain))
    };
    for case in cases {
        let mut changes = RuntimeChanges::new();
        (case.apply)(&mut changes);
        let name = case.name;
        // Reload of the same file, and restart (the state file read back).
        for (when, changes) in [
            ("reload", changes.clone()),
            ("restart", restarted(&changes)),
        ] {
            let merged = changes.merge(&file());
            assert_eq!(a_of(&merged), case.expect, "{name}, {when}");
            assert_eq!(merged.changes, changes, "{name}, {when}: kept as it is");
            assert!(merged.cleared.is_empty(), "{name}, {when}");
        }
        // A reload with another backend edited keeps the change.
        let mut edited = file();
        edited[1].weight = 9;
        assert_eq!(
            a_of(&changes.merge(&edited)),
            case.expect,
            "{name}, b edited"
        );
        // A reload with `a` edited: the file's entry is in force, the change is cleared.
        let mut edited = file();
        edited[0].weight = 3;
        let merged = changes.merge(&edited);
        assert_eq!(a_of(&merged), Some((3, false)), "{name}, a edited");
        assert!(merged.changes.is_empty(), "{name}, a edited");
    }
}
