//! Roboconf's REST resources under `/roboconf-dm`, and what the mesh adds (members,
//! coordinator, script runs). Each handler turns its HTTP request into the operator
//! API's `Request`, sends it through the same channel as the control socket, and turns
//! the `Response` into JSON: the API and the CLI are one implementation.

use super::{ApiError, Shared};
use crate::api::{Desired, InstanceView, Request, Response, State};
use axum::extract::{Path, Query, State as Ctx};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

type Params = Query<HashMap<String, String>>;
type Answer = Result<axum::response::Response, ApiError>;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/roboconf-dm/applications", get(applications))
        .route(
            "/roboconf-dm/applications/templates/local",
            post(add_application),
        )
        .route(
            "/roboconf-dm/applications/{name}",
            delete(remove_application),
        )
        .route(
            "/roboconf-dm/applications/{name}/shutdown",
            post(shutdown_application),
        )
        .route(
            "/roboconf-dm/app/{name}/instances",
            get(instances).post(create_instance).delete(delete_instance),
        )
        .route("/roboconf-dm/app/{name}/change-state", post(change_state))
        .route("/roboconf-dm/app/{name}/deploy-all", post(deploy_all))
        .route("/roboconf-dm/app/{name}/stop-all", post(stop_all))
        .route("/roboconf-dm/app/{name}/undeploy-all", post(undeploy_all))
        .route("/roboconf-dm/app/{name}/replicate", post(replicate))
        .route("/roboconf-dm/app/{name}/components", get(components))
        .route("/roboconf-dm/app/{name}/commands", get(commands))
        .route("/roboconf-dm/app/{name}/commands/execute", post(execute))
        .route("/roboconf-dm/app/{name}/runs", get(runs))
        .route("/roboconf-dm/history/commands", get(history))
        .route(
            "/roboconf-dm/scheduler",
            get(jobs).post(add_job).delete(remove_job),
        )
        .route("/roboconf-dm/debug/diagnose-application", get(diagnose))
        .route("/roboconf-dm/members", get(members))
        .route("/roboconf-dm/coordinator", get(coordinator))
}

fn json<T: Serialize>(value: &T) -> axum::response::Response {
    use axum::response::IntoResponse;
    Json(value).into_response()
}

/// An application name from the URL: no separators or dot-names (nothing in a path
/// parameter may walk the agent's folders).
fn app_name(name: &str) -> Result<String, ApiError> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad(format!(
            "`{}` is not an application name",
            roboconf_model::limits::preview(name)
        )));
    }
    Ok(name.to_string())
}

/// An instance path from the query: `/a/b`, no empty, `.` or `..` segment.
fn instance_path(path: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad(format!(
            "`{}` is not an instance path (e.g. /vm 1/web)",
            roboconf_model::limits::preview(path)
        ))
    };
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    if rest
        .split('/')
        .any(|s| s.trim().is_empty() || s == "." || s == ".." || s.contains(['\\', '\0']))
        || path.chars().any(char::is_control)
    {
        return Err(bad());
    }
    Ok(path.to_string())
}

fn param<'a>(q: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    q.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

fn required<'a>(q: &'a HashMap<String, String>, key: &str) -> Result<&'a str, ApiError> {
    param(q, key).ok_or_else(|| ApiError::bad(format!("the query parameter `{key}` is required")))
}

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    matches!(param(q, key), Some("true" | "1" | "yes"))
}

/// An `Ok` answer as `{"message": ...}`.
fn ok(r: Response) -> Answer {
    match r {
        Response::Ok { message } => Ok(json(&serde_json::json!({ "message": message }))),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// An application as the list shows it, with its health.
#[derive(Serialize)]
struct AppOut {
    name: String,
    version: String,
    instances: usize,
    started: usize,
    problems: usize,
    /// `problem` (an instance in PROBLEM), `deploying` (something on its way), `stopped`
    /// (nothing started), else `ok`.
    health: &'static str,
}

fn health(instances: &[InstanceView]) -> (usize, &'static str) {
    let problems = instances
        .iter()
        .filter(|i| i.state == State::Problem)
        .count();
    let moving = instances.iter().any(|i| {
        i.state.is_transient()
            || (i.desired == Desired::Started && i.state != State::DeployedStarted)
            || (i.desired == Desired::NotDeployed && i.state != State::NotDeployed)
    });
    let started = instances.iter().any(|i| i.state == State::DeployedStarted);
    let word = match (problems > 0, moving, started) {
        (true, _, _) => "problem",
        (false, true, _) => "deploying",
        (false, false, false) => "stopped",
        (false, false, true) => "ok",
    };
    (problems, word)
}

async fn applications(Ctx(s): Ctx<Shared>) -> Answer {
    let Response::Apps { apps } = s.call(Request::AppList).await? else {
        return Err(ApiError::internal(
            "unexpected answer to the application list",
        ));
    };
    let status = match s.call(Request::Status { app: None }).await? {
        Response::Status { apps } => apps,
        other => return Err(ApiError::unexpected(&other)),
    };
    let by_name: HashMap<&str, &[InstanceView]> = status
        .iter()
        .map(|a| (a.app.as_str(), a.instances.as_slice()))
        .collect();
    let out: Vec<AppOut> = apps
        .into_iter()
        .map(|a| {
            let (problems, word) = health(by_name.get(a.name.as_str()).copied().unwrap_or(&[]));
            AppOut {
                name: a.name,
                version: a.version,
                instances: a.instances,
                started: a.started,
                problems,
                health: word,
            }
        })
        .collect();
    Ok(json(&out))
}

async fn add_application(Ctx(s): Ctx<Shared>, Query(q): Params) -> Answer {
    let path = required(&q, "local-file-path")?;
    ok(s.call(Request::AppAdd {
        path: path.into(),
        name: param(&q, "name").map(String::from),
        start: flag(&q, "start"),
    })
    .await?)
}

async fn remove_application(Ctx(s): Ctx<Shared>, Path(name): Path<String>) -> Answer {
    ok(s.call(Request::AppRemove {
        name: app_name(&name)?,
    })
    .await?)
}

async fn shutdown_application(Ctx(s): Ctx<Shared>, Path(name): Path<String>) -> Answer {
    ok(s.call(Request::AppSet {
        name: app_name(&name)?,
        target: Desired::NotDeployed,
    })
    .await?)
}

/// An instance in Roboconf's JSON shape, with what the mesh adds.
#[derive(Serialize)]
struct InstanceOut<'a> {
    name: &'a str,
    path: &'a str,
    status: &'static str,
    desired: Desired,
    component: ComponentRef<'a>,
    node: Option<&'a str>,
    exports: &'a BTreeMap<String, String>,
    last_error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<&'a roboconf_core::engine::Retry>,
    machine: Option<&'a crate::api::MachineView>,
    data: BTreeMap<&'static str, &'a str>,
}

#[derive(Serialize)]
struct ComponentRef<'a> {
    name: &'a str,
}

fn instance_out(v: &InstanceView) -> InstanceOut<'_> {
    let mut data = BTreeMap::new();
    if let Some(m) = &v.machine {
        if !m.id.is_empty() {
            data.insert("machine.id", m.id.as_str());
        }
        if !m.address.is_empty() {
            data.insert("ip.address", m.address.as_str());
        }
    }
    if let Some(e) = &v.last_error {
        data.insert("last.problem", e.as_str());
    }
    InstanceOut {
        name: v.path.rsplit('/').next().unwrap_or_default(),
        path: &v.path,
        status: v.state.as_str(),
        desired: v.desired,
        component: ComponentRef { name: &v.component },
        node: v.node.as_deref(),
        exports: &v.exports,
        last_error: v.last_error.as_deref(),
        retry: v.retry.as_ref(),
        machine: v.machine.as_ref(),
        data,
    }
}

/// The instances of one application (404 when there is no such application).
async fn app_instances(s: &Shared, app: &str) -> Result<Vec<InstanceView>, ApiError> {
    match s
        .call(Request::Status {
            app: Some(app.to_string()),
        })
        .await?
    {
        Response::Status { mut apps } if apps.len() == 1 => Ok(apps.remove(0).instances),
        Response::Status { .. } => {
            Err(ApiError::not_found(format!("no application named `{app}`")))
        }
        other => Err(ApiError::unexpected(&other)),
    }
}

/// Roboconf's `GET instances`: without `instance-path`, the roots (every instance with
/// `all-children=true`); with it, its children (all its descendants with
/// `all-children=true`).
async fn instances(Ctx(s): Ctx<Shared>, Path(name): Path<String>, Query(q): Params) -> Answer {
    let app = app_name(&name)?;
    let all = flag(&q, "all-children");
    let base = param(&q, "instance-path").map(instance_path).transpose()?;
    let list = app_instances(&s, &app).await?;
    if let Some(b) = &base {
        if !list.iter().any(|v| &v.path == b) {
            return Err(ApiError::not_found(format!(
                "`{app}` has no instance `{b}`"
            )));
        }
    }
    let prefix = base
        .as_deref()
        .map(|b| format!("{b}/"))
        .unwrap_or_else(|| "/".into());
    let depth = prefix.matches('/').count();
    let chosen: Vec<InstanceOut> = list
        .iter()
        .filter(|v| v.path.starts_with(&prefix))
        .filter(|v| all || v.path.matches('/').count() == depth)
        .map(instance_out)
        .collect();
    Ok(json(&chosen))
}

#[derive(Deserialize)]
struct NewInstance {
    name: String,
    component: NewComponent,
}

#[derive(Deserialize)]
struct NewComponent {
    name: String,
}

async fn create_instance(
    Ctx(s): Ctx<Shared>,
    Path(name): Path<String>,
    Query(q): Params,
    body: Result<Json<NewInstance>, axum::extract::rejection::JsonRejection>,
) -> Answer {
    let app = app_name(&name)?;
    let Json(new) =
        body.map_err(|e| ApiError::bad(format!("the body is not an instance: {}", e.body_text())))?;
    let parent = param(&q, "instance-path").map(instance_path).transpose()?;
    let path = instance_path(&format!("{}/{}", parent.unwrap_or_default(), new.name))?;
    ok(s.call(Request::InstanceCreate {
        app,
        path,
        component: new.component.name,
    })
    .await?)
}

async fn delete_instance(
    Ctx(s): Ctx<Shared>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Answer {
    let app = app_name(&name)?;
    let path = instance_path(required(&q, "instance-path")?)?;
    ok(s.call(Request::InstanceDelete { app, path }).await?)
}

/// Roboconf's target states an operator may ask for.
fn desired_of(state: &str) -> Result<Desired, ApiError> {
    match State::parse(state) {
        Some(State::DeployedStarted) => Ok(Desired::Started),
        Some(State::DeployedStopped) => Ok(Desired::Deployed),
        Some(State::NotDeployed) => Ok(Desired::NotDeployed),
        _ => Err(ApiError::bad(format!(
            "`{}` is not a state to ask for: DEPLOYED_STARTED, DEPLOYED_STOPPED or NOT_DEPLOYED",
            roboconf_model::limits::preview(state)
        ))),
    }
}

async fn change_state(Ctx(s): Ctx<Shared>, Path(name): Path<String>, Query(q): Params) -> Answer {
    let app = app_name(&name)?;
    let target = desired_of(required(&q, "new-state")?)?;
    let path = instance_path(required(&q, "instance-path")?)?;
    ok(s.call(Request::InstanceSet { app, path, target }).await?)
}

/// `deploy-all`, `stop-all`, `undeploy-all`: the whole application, or an instance and
/// everything below it.
async fn set_all(s: Shared, name: String, q: HashMap<String, String>, target: Desired) -> Answer {
    let app = app_name(&name)?;
    let Some(base) = param(&q, "instance-path").map(instance_path).transpose()? else {
        return ok(s.call(Request::AppSet { name: app, target }).await?);
    };
    let list = app_instances(&s, &app).await?;
    if !list.iter().any(|v| v.path == base) {
        return Err(ApiError::not_found(format!(
            "`{app}` has no instance `{base}`"
        )));
    }
    let below = format!("{base}/");
    // Parents first when starting, children first when stopping.
    let mut paths: Vec<&str> = list
        .iter()
        .map(|v| v.path.as_str())
        .filter(|p| *p == base || p.starts_with(&below))
        .collect();
    if target != Desired::Started {
        paths.reverse();
    }
    let count = paths.len();
    for path in paths {
        let r = s
            .call(Request::InstanceSet {
                app: app.clone(),
                path: path.to_string(),
                target,
            })
            .await?;
        if !matches!(r, Response::Ok { .. }) {
            return Err(ApiError::unexpected(&r));
        }
    }
    Ok(json(&serde_json::json!({
        "message": format!("{count} instances under {base} set")
    })))
}

async fn deploy_all(Ctx(s): Ctx<Shared>, Path(n): Path<String>, Query(q): Params) -> Answer {
    set_all(s, n, q, Desired::Started).await
}

async fn stop_all(Ctx(s): Ctx<Shared>, Path(n): Path<String>, Query(q): Params) -> Answer {
    set_all(s, n, q, Desired::Deployed).await
}

async fn undeploy_all(Ctx(s): Ctx<Shared>, Path(n): Path<String>, Query(q): Params) -> Answer {
    set_all(s, n, q, Desired::NotDeployed).await
}

async fn replicate(Ctx(s): Ctx<Shared>, Path(name): Path<String>, Query(q): Params) -> Answer {
    let app = app_name(&name)?;
    let path = instance_path(required(&q, "instance-path")?)?;
    let new = required(&q, "name")?;
    instance_path(&format!("/{new}"))?;
    ok(s.call(Request::InstanceReplicate {
        app,
        path,
        name: new.to_string(),
    })
    .await?)
}

async fn components(Ctx(s): Ctx<Shared>, Path(name): Path<String>) -> Answer {
    match s
        .call(Request::Components {
            app: app_name(&name)?,
        })
        .await?
    {
        Response::Components { components } => Ok(json(&components)),
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn commands(Ctx(s): Ctx<Shared>, Path(name): Path<String>) -> Answer {
    match s
        .call(Request::Commands {
            app: app_name(&name)?,
        })
        .await?
    {
        Response::Names { names } => Ok(json(&names)),
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn execute(Ctx(s): Ctx<Shared>, Path(name): Path<String>, Query(q): Params) -> Answer {
    let app = app_name(&name)?;
    let command = required(&q, "command-name")?.to_string();
    ok(s.call(Request::Exec { app, command }).await?)
}

async fn runs(Ctx(s): Ctx<Shared>, Path(name): Path<String>, Query(q): Params) -> Answer {
    let app = app_name(&name)?;
    let path = instance_path(required(&q, "instance-path")?)?;
    match s.call(Request::Logs { app, path }).await? {
        Response::Logs { runs } => Ok(json(&runs)),
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn history(Ctx(s): Ctx<Shared>, Query(q): Params) -> Answer {
    let app = param(&q, "app").map(app_name).transpose()?;
    match s.call(Request::History { app }).await? {
        Response::History { items } => Ok(json(&items)),
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn jobs(Ctx(s): Ctx<Shared>, Query(q): Params) -> Answer {
    let app = param(&q, "app-name").map(app_name).transpose()?;
    match s.call(Request::JobList { app }).await? {
        Response::Jobs { jobs } => Ok(json(&jobs)),
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn add_job(Ctx(s): Ctx<Shared>, Query(q): Params) -> Answer {
    ok(s.call(Request::JobAdd {
        app: app_name(required(&q, "app-name")?)?,
        name: required(&q, "job-name")?.to_string(),
        command: required(&q, "cmd-name")?.to_string(),
        cron: required(&q, "cron")?.to_string(),
    })
    .await?)
}

async fn remove_job(Ctx(s): Ctx<Shared>, Query(q): Params) -> Answer {
    ok(s.call(Request::JobRemove {
        app: app_name(required(&q, "app-name")?)?,
        name: required(&q, "job-name")?.to_string(),
    })
    .await?)
}

async fn diagnose(Ctx(s): Ctx<Shared>, Query(q): Params) -> Answer {
    let app = app_name(required(&q, "application-name")?)?;
    match s.call(Request::Diagnose { app }).await? {
        Response::Diagnosis { instances } => Ok(json(&instances)),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// A member with its roles in the coordinator.
#[derive(Serialize)]
struct MemberOut {
    #[serde(flatten)]
    member: crate::api::MemberView,
    roles: Vec<&'static str>,
}

async fn members(Ctx(s): Ctx<Shared>) -> Answer {
    let Response::Members { members } = s.call(Request::Members).await? else {
        return Err(ApiError::internal("unexpected answer to members"));
    };
    // An agent without a network has no coordinator: no roles.
    let coord = match s.call(Request::Coordinator).await? {
        Response::Coordinator(c) => c,
        _ => Default::default(),
    };
    let out: Vec<MemberOut> = members
        .into_iter()
        .map(|m| {
            let mut roles = Vec::new();
            if coord.voters.iter().any(|v| v.id == m.id) {
                roles.push("voter");
            }
            if coord.leader.as_deref() == Some(m.id.as_str()) {
                roles.push("leader");
            }
            MemberOut { member: m, roles }
        })
        .collect();
    Ok(json(&out))
}

async fn coordinator(Ctx(s): Ctx<Shared>) -> Answer {
    match s.call(Request::Coordinator).await? {
        Response::Coordinator(c) => Ok(json(&c)),
        other => Err(ApiError::unexpected(&other)),
    }
}
