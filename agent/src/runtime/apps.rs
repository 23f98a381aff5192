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

/// Reads, validates and copies an application folder into the data directory.
pub(super) fn register_bundle(
    data_dir: &Path,
    path: &Path,
    name: Option<String>,
) -> Result<LoadedApp, Response> {
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
    let name = name.unwrap_or_else(|| model.name().to_string());
    if !roboconf_model::dsl::text::is_app_name(&name) {
        return Err(Response::error(format!(
            "invalid application name `{name}`"
        )));
    }
    let bundle = data_dir
        .join("apps")
        .join(roboconf_model::resolve::clean_path(&format!("/{name}")));
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
    let (bytes, hash) = crate::bundle::pack(&bundle)
        .map_err(|e| Response::error(format!("cannot bundle the application: {e}")))?;
    let store = data_dir.join("bundles");
    std::fs::create_dir_all(&store)
        .and_then(|_| std::fs::write(store.join(&hash), &bytes))
        .map_err(|e| Response::error(format!("cannot store the bundle: {e}")))?;
    let (model, _) = roboconf_model::app::load_application(&bundle, Limits::default());
    let version = model
        .descriptor
        .as_ref()
        .and_then(|d| d.version.clone())
        .unwrap_or_default();
    Ok(LoadedApp {
        name,
        version,
        bundle,
        hash,
        model,
    })
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
    let fail = |error: String, output: String| RunResult {
        ok: false,
        code: None,
        error: Some(error),
        output,
        at_ms: now_ms(),
    };
    if let Err(e) = prepare() {
        return fail(
            format!(
                "cannot prepare the working directory {}: {e}",
                dir.display()
            ),
            String::new(),
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
        },
        Err(roboconf_plugins::Error::Failed { code, output, .. }) => RunResult {
            ok: false,
            code: Some(code),
            error: Some(format!("exit code {code}")),
            output,
            at_ms: now_ms(),
        },
        Err(roboconf_plugins::Error::TimedOut {
            seconds, output, ..
        }) => fail(format!("timed out after {seconds} s"), output),
        Err(e) => fail(e.to_string(), String::new()),
    }
}
