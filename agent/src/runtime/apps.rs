//! What the runtime does with application folders and plug-in runs: an application
//! added by an operator is validated, copied into the data directory and bundled (so
//! peers can fetch it); a plug-in run gets the instance's working copy of its recipe and
//! runs there, inside a `run` span (application, instance, action, run id) whose end
//! is logged: at debug when it went well, as a warning when it failed.

use super::now_ms;
use crate::api::Response;
use crate::core::{LoadedApp, PluginRun, RunResult};
use roboconf_model::diag::has_errors;
use roboconf_model::dsl::Limits;
use roboconf_plugins::{logger::Logger, puppet::Puppet, script::Script, Plugin};
use std::path::Path;

/// Most findings listed in one answer (an application may have millions).
const MAX_LISTED: usize = 100;

/// The first `MAX_LISTED` findings as text, then how many more there were.
fn listed<'a>(diags: impl Iterator<Item = &'a roboconf_model::Diagnostic>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut more = 0;
    for d in diags {
        if out.len() < MAX_LISTED {
            out.push(d.to_string());
        } else {
            more += 1;
        }
    }
    if more > 0 {
        out.push(format!("… and {more} more"));
    }
    out
}

/// What an application is made of, to compare two readings of it.
fn shape(m: &roboconf_model::app::Application) -> (Vec<String>, Vec<String>, usize, usize) {
    let mut comps: Vec<String> = m
        .graph
        .as_ref()
        .map(|g| g.components.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    comps.sort();
    let mut paths: Vec<String> = (0..m.instances.instances.len())
        .map(|i| m.instances.path(i))
        .collect();
    paths.sort();
    (comps, paths, m.commands.len(), m.rules.len())
}

/// What `app add` found: a new application, stored, with the warnings the operator
/// should see (links left out...); or one registered already with this very content.
pub(super) enum Added {
    New(Box<LoadedApp>, Vec<String>),
    Same(String),
}

/// Reads and validates an application folder and stores it as a bundle. Blocking: the
/// runtime runs it on a worker. `registered` maps the names registered to their bundles'
/// hashes: nothing is stored for a name that is taken — the same content is not an
/// error (`app add` may be run on every node), other content is. The
/// folder is packed, and what this node registers is the bundle unpacked — exactly what
/// every other node will get — read again: refused unless it gives the same application
/// (a file it needs would be missing elsewhere). Bundles live in
/// `apps/<name folder>@<hash>`, like those fetched from peers.
pub(super) fn prepare_bundle(
    data_dir: &Path,
    path: &Path,
    name: Option<String>,
    registered: &std::collections::BTreeMap<String, String>,
) -> Result<Added, Response> {
    let (model, diags) = roboconf_model::app::load_application(path, Limits::default());
    if has_errors(&diags) {
        return Err(Response::Error {
            message: format!(
                "{} is not a valid application: nothing was stored",
                path.display()
            ),
            details: listed(diags.iter().filter(|d| d.is_error())),
        });
    }
    let warnings = listed(diags.iter());
    let name = name.unwrap_or_else(|| model.name().to_string());
    if !roboconf_model::dsl::text::is_app_name(&name) {
        return Err(Response::error(format!(
            "invalid application name `{}`",
            roboconf_model::limits::preview(&name)
        )));
    }
    roboconf_model::limits::check_name("application", &name).map_err(Response::error)?;
    let apps = data_dir.join("apps");
    let staging = crate::bundle::staging_dir(&apps);
    let packed = std::fs::create_dir_all(&apps)
        .and_then(|()| copy_dir(path, &staging))
        .map_err(|e| format!("cannot copy the application: {e}"))
        .and_then(|()| {
            crate::bundle::pack(&staging).map_err(|e| format!("cannot bundle the application: {e}"))
        });
    let _ = std::fs::remove_dir_all(&staging);
    let (bytes, hash) = packed.map_err(Response::error)?;
    match registered.get(&name) {
        Some(h) if *h == hash => return Ok(Added::Same(name)),
        Some(_) => return Err(already(&name)),
        None => {}
    }
    let bundle = crate::bundle::app_dir(&apps, &name, &hash);
    // Unpacked aside, read, and only then put in its place (where a fetch of the same
    // bundle may have put it already).
    let unpacked = crate::bundle::staging_dir(&apps);
    let refuse = |r: Response| {
        let _ = std::fs::remove_dir_all(&unpacked);
        Err(r)
    };
    if let Err(e) = crate::bundle::unpack(&bytes, &hash, &unpacked) {
        return refuse(Response::error(format!("cannot unpack the bundle: {e}")));
    }
    let (copied, copy_diags) = roboconf_model::app::load_application(&unpacked, Limits::default());
    if has_errors(&copy_diags) || shape(&copied) != shape(&model) {
        return refuse(Response::Error {
            message: format!(
                "{} is not the same application once bundled (every node gets a copy of \
                 its folder's regular files — no links, no empty folders): nothing was stored",
                path.display()
            ),
            details: listed(copy_diags.iter().filter(|d| d.is_error())),
        });
    }
    let store = data_dir.join("bundles");
    if let Err(e) =
        std::fs::create_dir_all(&store).and_then(|_| std::fs::write(store.join(&hash), &bytes))
    {
        return refuse(Response::error(format!("cannot store the bundle: {e}")));
    }
    if let Err(e) = crate::bundle::settle(&unpacked, &bundle) {
        return refuse(Response::error(format!("cannot store the bundle: {e}")));
    }
    // What was read from the staging folder, now in its place.
    let copied = roboconf_model::app::Application {
        dir: bundle.clone(),
        ..copied
    };
    let version = copied
        .descriptor
        .as_ref()
        .and_then(|d| d.version.clone())
        .unwrap_or_default();
    Ok(Added::New(
        Box::new(LoadedApp {
            name,
            version,
            bundle,
            hash,
            model: copied,
        }),
        warnings,
    ))
}

/// The answer to adding an application whose name is taken.
pub(super) fn already(name: &str) -> Response {
    Response::error(format!(
        "an application named `{name}` is already registered with other content (`roboconf app remove {name}` first)"
    ))
}

/// Deletes what an application left in the data directory once it is removed: its
/// bundle (where its record says), every bundle of that name (`apps/<folder>@<hash>`)
/// and its instances' working folders. They are first renamed into `trash/` (at once, so
/// that a new application of that name never meets them), then deleted on a worker
/// (working folders may be large).
pub(super) fn remove_app_files(data_dir: &Path, name: &str, bundle: Option<&Path>) {
    let apps = data_dir.join("apps");
    let folder = crate::core::folders::app_folder(name);
    let mut gone: Vec<std::path::PathBuf> = bundle
        .filter(|b| b.starts_with(&apps))
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    gone.push(apps.join(&folder));
    let fetched = format!("{folder}@");
    for e in std::fs::read_dir(&apps).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&fetched) {
            gone.push(e.path());
        }
    }
    gone.push(data_dir.join("instances").join(name));
    let trash = data_dir.join("trash");
    let _ = std::fs::create_dir_all(&trash);
    let mut moved = Vec::new();
    for (i, p) in gone.into_iter().enumerate() {
        let to = crate::bundle::staging_dir(&trash).with_extension(i.to_string());
        if std::fs::rename(&p, &to).is_ok() {
            moved.push(to);
        }
    }
    tokio::task::spawn_blocking(move || {
        for p in moved {
            let _ = std::fs::remove_dir_all(p);
        }
    });
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

/// The plug-ins this agent runs, one per installer it supports (`file` has no settings).
pub(super) struct Plugins {
    pub script: Script,
    pub puppet: Puppet,
    pub logger: Logger,
}

/// Prepares the instance's working copy of its recipe, then runs the plug-in; logs how
/// it ended (never the script's output, which may hold anything).
#[tracing::instrument(
    name = "run",
    skip_all,
    fields(
        app = run.app.as_str(),
        instance = run.path.as_str(),
        action = run.action.as_str(),
        run = run.run
    )
)]
pub(super) fn execute(run: &PluginRun, plugins: &Plugins) -> RunResult {
    let started = std::time::Instant::now();
    tracing::debug!(installer = run.installer.as_str(), "plug-in run started");
    let result = run_plugin(run, plugins);
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &result.error {
        None => tracing::debug!(code = result.code, elapsed_ms, "plug-in run ended"),
        Some(error) => tracing::warn!(
            error = error.as_str(),
            code = result.code,
            retry = result.retry,
            elapsed_ms,
            "plug-in run failed"
        ),
    }
    result
}

fn run_plugin(run: &PluginRun, plugins: &Plugins) -> RunResult {
    let dir = &run.invocation.recipe_dir;
    let prepare = || -> std::io::Result<()> {
        let _writing = roboconf_plugins::process::EXEC_LOCK.write();
        if run.fresh_copy && dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        if !dir.exists() {
            let recipe = run
                .components
                .iter()
                .map(|c| run.invocation.application_dir.join("graph").join(c))
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
        "script" => &plugins.script,
        "puppet" => &plugins.puppet,
        "logger" => &plugins.logger,
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
        Ok(o) => {
            if run.installer == "logger" {
                // What the `logger` plug-in records goes to this agent's log.
                tracing::info!(output = o.output.as_str(), "logger plug-in");
            }
            // A warning is kept as the error of a run that went well (the run record's
            // shape is shared with older agents).
            RunResult {
                ok: true,
                code: o.code.or(Some(0).filter(|_| o.ran)),
                error: o.warning.map(|w| format!("warning: {w}")),
                output: o.output,
                at_ms: now_ms(),
                retry: false,
            }
        }
        Err(roboconf_plugins::Error::Failed {
            code,
            detail,
            output,
            ..
        }) => RunResult {
            ok: false,
            code: Some(code),
            error: Some(match detail {
                Some(d) => format!("exit code {code}: {d}"),
                None => format!("exit code {code}"),
            }),
            output,
            at_ms: now_ms(),
            retry: false,
        },
        Err(roboconf_plugins::Error::Refused {
            message, output, ..
        }) => fail(message, output, false),
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
