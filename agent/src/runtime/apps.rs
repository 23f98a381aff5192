//! What the runtime does with application folders and plug-in runs: an application
//! added by an operator is validated, copied into the data directory and bundled (so
//! peers can fetch it); a plug-in run gets the instance's working copy of its recipe and
//! runs there.

use super::now_ms;
use crate::api::Response;
use crate::core::{LoadedApp, PluginRun, RunResult};
use roboconf_model::diag::has_errors;
use roboconf_model::dsl::Limits;
use roboconf_plugins::{logger::Logger, script::Script, Plugin};
use std::path::Path;

/// Reads, validates and copies an application folder into the data directory, with the
/// warnings the operator should see (links left out...). The copy is what every other
/// node gets: it is read again, and refused unless it gives the same application (a file
/// it needs would be missing on the other nodes).
pub(super) fn register_bundle(
    data_dir: &Path,
    path: &Path,
    name: Option<String>,
) -> Result<(LoadedApp, Vec<String>), Response> {
    let (model, diags) = roboconf_model::app::load_application(path, Limits::default());
    if has_errors(&diags) {
        return Err(Response::Error {
            message: format!(
                "{} is not a valid application: nothing was stored",
                path.display()
            ),
            details: diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.to_string())
                .collect(),
        });
    }
    let warnings: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    let name = name.unwrap_or_else(|| model.name().to_string());
    if !roboconf_model::dsl::text::is_app_name(&name) {
        return Err(Response::error(format!(
            "invalid application name `{}`",
            roboconf_model::limits::preview(&name)
        )));
    }
    roboconf_model::limits::check_name("application", &name).map_err(Response::error)?;
    let bundle = data_dir
        .join("apps")
        .join(crate::core::folders::app_folder(&name));
    let copy = || -> std::io::Result<()> {
        if bundle.exists() {
            std::fs::remove_dir_all(&bundle)?;
        }
        copy_dir(path, &bundle)
    };
    copy().map_err(|e| {
        Response::error(format!(
            "cannot copy the application into {}: {e}",
            bundle.display()
        ))
    })?;
    let refuse = |r: Response| {
        let _ = std::fs::remove_dir_all(&bundle);
        Err(r)
    };
    let (copied, copy_diags) = roboconf_model::app::load_application(&bundle, Limits::default());
    let count = |m: &roboconf_model::app::Application| {
        (
            m.graph.as_ref().map_or(0, |g| g.components.len()),
            m.instances.instances.len(),
        )
    };
    if has_errors(&copy_diags) || count(&copied) != count(&model) {
        return refuse(Response::Error {
            message: format!(
                "{} reads files that would not travel with it (every node gets a copy of its \
                 folder, without links): nothing was stored",
                path.display()
            ),
            details: copy_diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.to_string())
                .collect(),
        });
    }
    let (bytes, hash) = match crate::bundle::pack(&bundle) {
        Ok(b) => b,
        Err(e) => {
            return refuse(Response::error(format!(
                "cannot bundle the application: {e}"
            )))
        }
    };
    let store = data_dir.join("bundles");
    if let Err(e) =
        std::fs::create_dir_all(&store).and_then(|_| std::fs::write(store.join(&hash), &bytes))
    {
        return refuse(Response::error(format!("cannot store the bundle: {e}")));
    }
    let version = copied
        .descriptor
        .as_ref()
        .and_then(|d| d.version.clone())
        .unwrap_or_default();
    Ok((
        LoadedApp {
            name,
            version,
            bundle,
            hash,
            model: copied,
        },
        warnings,
    ))
}

/// Deletes what an application left in the data directory once it is removed: its
/// bundle (where its record says), the bundles fetched for it (`apps/<folder>@<hash>`)
/// and its instances' working folders.
pub(super) fn remove_app_files(data_dir: &Path, name: &str, bundle: Option<&Path>) {
    let apps = data_dir.join("apps");
    let folder = crate::core::folders::app_folder(name);
    if let Some(b) = bundle.filter(|b| b.starts_with(&apps)) {
        let _ = std::fs::remove_dir_all(b);
    }
    let _ = std::fs::remove_dir_all(apps.join(&folder));
    let fetched = format!("{folder}@");
    for e in std::fs::read_dir(&apps).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&fetched) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let _ = std::fs::remove_dir_all(data_dir.join("instances").join(name));
}

/// Copies a folder recursively (bundles, the demo).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type()?;
        if t.is_dir() {
            copy_dir(&src, &dst)?;
        } else if t.is_file() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Prepares the instance's working copy of its recipe, then runs the plug-in.
pub(super) fn execute(run: &PluginRun, script: &Script, logger: &Logger) -> RunResult {
    let dir = &run.invocation.recipe_dir;
    let prepare = || -> std::io::Result<()> {
        let _writing = roboconf_plugins::script::EXEC_LOCK.write();
        if run.fresh_copy && dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        if !dir.exists() {
            let recipe = run
                .components
                .iter()
                .map(|c| run.bundle.join("graph").join(c))
                .find(|p| p.is_dir());
            match recipe {
                Some(r) => copy_dir(&r, dir)?,
                None => std::fs::create_dir_all(dir)?,
            }
        }
        Ok(())
    };
    // `retry`: the failure is the environment's, tried again by itself (records::Retry).
    let fail = |error: String, output: String, retry: bool| RunResult {
        ok: false,
        code: None,
        error: Some(error),
        output,
        at_ms: now_ms(),
        retry,
    };
    if let Err(e) = prepare() {
        return fail(
            format!(
                "cannot prepare the working directory {}: {e}",
                dir.display()
            ),
            String::new(),
            true,
        );
    }
    let plugin: &dyn Plugin = match run.installer.as_str() {
        "script" => script,
        "logger" => logger,
        "file" => &roboconf_plugins::file::File,
        other => {
            return fail(
                format!("the installer `{other}` is not supported by this agent"),
                String::new(),
                false,
            )
        }
    };
    match plugin.run(run.action, &run.invocation) {
        Ok(o) => RunResult {
            ok: true,
            code: Some(0).filter(|_| o.ran),
            error: None,
            output: o.output,
            at_ms: now_ms(),
            retry: false,
        },
        Err(roboconf_plugins::Error::Failed { code, output, .. }) => RunResult {
            ok: false,
            code: Some(code),
            error: Some(format!("exit code {code}")),
            output,
            at_ms: now_ms(),
            retry: false,
        },
        Err(roboconf_plugins::Error::TimedOut {
            seconds, output, ..
        }) => fail(format!("timed out after {seconds} s"), output, false),
        // The script could not be started: tried again when the machine lacked something
        // (space, memory, descriptors, processes); not when the script itself is at fault
        // (no interpreter, not executable).
        Err(roboconf_plugins::Error::Io(e)) => {
            let retry = lacking(&e);
            fail(e.to_string(), String::new(), retry)
        }
    }
}

/// Whether an I/O error says the machine lacked a resource for a while (the action may
/// succeed later without anyone changing the application).
pub(super) fn lacking(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    // EMFILE, ENFILE: no file descriptor left (no stable `ErrorKind` for them).
    matches!(e.raw_os_error(), Some(23 | 24))
        || matches!(
            e.kind(),
            K::StorageFull
                | K::QuotaExceeded
                | K::OutOfMemory
                | K::ResourceBusy
                | K::ExecutableFileBusy
                | K::WouldBlock
                | K::Interrupted
                | K::ReadOnlyFilesystem
        )
}
