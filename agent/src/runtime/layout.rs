//! The data directory as the agent finds it at start: a store that is gone while the
//! applications and instance folders it described are still there is refused (unless
//! the operator says `--reset-store`, which moves those aside), and the working folders
//! of an older layout are moved to their injective names (`core::folders`).

use super::{now_ms, Error};
use crate::core::folders::instance_folder;
use crate::core::InstanceRecord;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file saying which layout the instance folders follow.
const LAYOUT_FILE: &str = "layout";
/// Version 2: working folders named by `instance_folder` (version 1: Roboconf's clean
/// path, which several instances could share).
const LAYOUT: &str = "2";

/// What a data dir holds besides its store: registered applications' bundles and
/// instances' working folders.
const LEFTOVERS: [&str; 3] = ["apps", "instances", "bundles"];

fn non_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// The store is new (`fresh`): if the data dir still holds applications or instance
/// folders, the store that described them was lost. Refused, unless `reset`: then they
/// are moved aside into `reset-<ms>/`, so that nothing a deploy would overwrite is lost.
pub(super) fn check_fresh_store(data_dir: &Path, fresh: bool, reset: bool) -> Result<(), Error> {
    if !fresh {
        return Ok(());
    }
    let found: Vec<&str> = LEFTOVERS
        .into_iter()
        .filter(|d| non_empty(&data_dir.join(d)))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    let shown = data_dir.display().to_string();
    if !reset {
        return Err(Error::DataDir {
            path: shown.clone(),
            message: format!(
                "its store is missing or empty, but it still holds {}: the record of what \
                 this agent deployed is lost. Restore {}/store from a backup, or start with \
                 --reset-store to begin with an empty store (these folders are then moved \
                 aside into {}/reset-<time>/)",
                found
                    .iter()
                    .map(|d| format!("{d}/"))
                    .collect::<Vec<_>>()
                    .join(", "),
                shown,
                shown
            ),
        });
    }
    let aside = data_dir.join(format!("reset-{}", now_ms()));
    std::fs::create_dir_all(&aside).map_err(|e| Error::DataDir {
        path: shown.clone(),
        message: format!("cannot create {}: {e}", aside.display()),
    })?;
    for d in found {
        std::fs::rename(data_dir.join(d), aside.join(d)).map_err(|e| Error::DataDir {
            path: shown.clone(),
            message: format!("cannot move {d}/ aside: {e}"),
        })?;
    }
    tracing::warn!(
        data_dir = shown.as_str(),
        moved_to = %aside.display(),
        "--reset-store: starting with an empty store; the applications and instance \
         folders found were moved aside"
    );
    Ok(())
}

/// Deletes what an interrupted run left behind: bundles being staged (`apps/.staging-*`)
/// and removed applications' folders not yet deleted (`trash/`). Blocking (on a worker).
pub(super) fn clean_leftovers(data_dir: &Path) {
    let _ = std::fs::remove_dir_all(data_dir.join("trash"));
    for e in std::fs::read_dir(data_dir.join("apps"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with(".staging-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Moves working folders named by an older layout to their current names, once. Folders
/// that several instances shared (their clean paths were equal) go to the one instance
/// that is deployed; if several are, each gets a copy (that is what they shared).
pub(super) fn migrate_work_dirs(
    data_dir: &Path,
    instances: &[InstanceRecord],
) -> Result<(), Error> {
    let marker = data_dir.join(LAYOUT_FILE);
    if std::fs::read_to_string(&marker).is_ok_and(|v| v.trim() == LAYOUT) {
        return Ok(());
    }
    let fail = |message: String| Error::DataDir {
        path: data_dir.display().to_string(),
        message,
    };
    let work = data_dir.join("instances");
    let mut groups: BTreeMap<PathBuf, Vec<&InstanceRecord>> = BTreeMap::new();
    for r in instances {
        let old = work
            .join(&r.app)
            .join(roboconf_model::resolve::clean_path(&r.path));
        groups.entry(old).or_default().push(r);
    }
    for (old, recs) in groups {
        if !old.is_dir() {
            continue;
        }
        let deployed: Vec<&&InstanceRecord> = recs
            .iter()
            .filter(|r| r.state != crate::api::State::NotDeployed)
            .collect();
        let owners: Vec<&InstanceRecord> = match (deployed.len(), recs.len()) {
            (0, 1) => recs.clone(),
            (0, _) => Vec::new(),
            _ => deployed.into_iter().copied().collect(),
        };
        let names: Vec<PathBuf> = owners
            .iter()
            .map(|r| work.join(&r.app).join(instance_folder(&r.path)))
            .collect();
        // An owner whose new name is the old one keeps it; the others get copies.
        let stays = names.contains(&old);
        let targets: Vec<PathBuf> = names
            .into_iter()
            .filter(|t| *t != old && !t.exists())
            .collect();
        if targets.is_empty() {
            continue;
        }
        if owners.len() > 1 {
            tracing::warn!(
                instances = owners
                    .iter()
                    .map(|r| r.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                folder = %old.display(),
                "instances shared a working folder; each now has a copy"
            );
        }
        let (last, rest) = match targets.split_last() {
            Some((last, rest)) if !stays => (Some(last), rest),
            _ => (None, targets.as_slice()),
        };
        for t in rest {
            super::copy_dir(&old, t).map_err(|e| {
                fail(format!(
                    "cannot copy {} to {}: {e}",
                    old.display(),
                    t.display()
                ))
            })?;
        }
        let Some(last) = last else { continue };
        std::fs::rename(&old, last).map_err(|e| {
            fail(format!(
                "cannot move {} to {}: {e}",
                old.display(),
                last.display()
            ))
        })?;
    }
    std::fs::write(&marker, format!("{LAYOUT}\n"))
        .map_err(|e| fail(format!("cannot write {}: {e}", marker.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Desired, State};

    fn rec(path: &str, state: State) -> InstanceRecord {
        InstanceRecord {
            state,
            ..InstanceRecord::new("lamp", path, "x", "App", Desired::Started)
        }
    }

    #[test]
    fn old_working_folders_move_to_their_own_names_once() {
        let d = tempfile::tempdir().expect("tmp");
        let work = d.path().join("instances/lamp");
        std::fs::create_dir_all(work.join("vm_lb_a_b")).unwrap();
        std::fs::write(work.join("vm_lb_a_b/pid"), "42").unwrap();
        std::fs::create_dir_all(work.join("vm_db")).unwrap();
        std::fs::write(work.join("vm_db/state"), "x").unwrap();
        let recs = [
            rec("/vm-lb/a b", State::NotDeployed),
            rec("/vm-lb/a-b", State::DeployedStarted),
            rec("/vm-lb/a_b", State::NotDeployed),
            rec("/vm/db", State::DeployedStopped),
        ];
        migrate_work_dirs(d.path(), &recs).expect("migrate");
        assert_eq!(
            std::fs::read_to_string(work.join("vm-lb+a-b/pid")).unwrap(),
            "42",
            "the deployed one of the three gets the shared folder"
        );
        assert!(!work.join("vm_lb_a_b").exists());
        assert!(!work.join("vm-lb+a_b").exists() && !work.join("vm-lb+a%20b").exists());
        assert!(work.join("vm+db/state").is_file());
        // Once: a folder of the old layout made later is left alone.
        std::fs::create_dir_all(work.join("vm_db")).unwrap();
        std::fs::remove_dir_all(work.join("vm+db")).unwrap();
        migrate_work_dirs(d.path(), &recs).expect("again");
        assert!(work.join("vm_db").is_dir() && !work.join("vm+db").exists());
    }

    #[test]
    fn a_shared_folder_of_several_deployed_instances_is_copied_to_each() {
        let d = tempfile::tempdir().expect("tmp");
        let work = d.path().join("instances/lamp");
        std::fs::create_dir_all(work.join("a_b_c")).unwrap();
        std::fs::write(work.join("a_b_c/f"), "1").unwrap();
        let recs = [
            rec("/a-b/c", State::DeployedStarted),
            rec("/a/b-c", State::DeployedStopped),
        ];
        migrate_work_dirs(d.path(), &recs).expect("migrate");
        assert!(work.join("a-b+c/f").is_file() && work.join("a+b-c/f").is_file());
    }

    #[test]
    fn a_lost_store_is_refused_unless_reset() {
        let d = tempfile::tempdir().expect("tmp");
        assert!(
            check_fresh_store(d.path(), true, false).is_ok(),
            "a new data dir"
        );
        std::fs::create_dir_all(d.path().join("instances/lamp/vm+a")).unwrap();
        assert!(
            check_fresh_store(d.path(), false, false).is_ok(),
            "store there"
        );
        let e = check_fresh_store(d.path(), true, false).expect_err("refused");
        assert!(e.to_string().contains("--reset-store"), "{e}");
        assert!(e.to_string().contains("instances/"), "{e}");
        check_fresh_store(d.path(), true, true).expect("reset");
        assert!(!d.path().join("instances").exists());
        let aside: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("reset-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert!(aside[0].path().join("instances/lamp/vm+a").is_dir());
    }
}
