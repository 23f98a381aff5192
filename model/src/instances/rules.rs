//! Validation of instances against the graph (Roboconf's RM_ codes for instances): names,
//! placement (a root component's instance has no parent, any other is placed under an
//! instance of one of its possible parents), overridden exports that match nothing or are
//! ambiguous, and exported variables left without a value.

use super::InstanceSet;
use crate::diag::{Code, Diagnostic};
use crate::dsl::text::{is_blank, is_flex_id};
use crate::graph::{split_var, Graph};
use crate::resolve::{instance_exports, Resolved};

/// Validates every instance.
pub fn validate_instances(g: &Graph, r: &Resolved, set: &InstanceSet) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for i in 0..set.instances.len() {
        validate_instance(g, r, set, i, &mut out);
    }
    out
}

fn validate_instance(
    g: &Graph,
    r: &Resolved,
    set: &InstanceSet,
    i: usize,
    out: &mut Vec<Diagnostic>,
) {
    let inst = &set.instances[i];
    let at = &inst.loc;
    let mut push =
        |code: Code, msg: String| out.push(Diagnostic::new(code, &at.file, at.line, at.col, msg));
    if is_blank(&inst.name) {
        push(
            Code::RM_EMPTY_INSTANCE_NAME,
            "an instance has an empty name".into(),
        );
    } else if !is_flex_id(&inst.name) {
        push(
            Code::RM_INVALID_INSTANCE_NAME,
            format!("invalid instance name `{}`", inst.name),
        );
    }
    let Some(c) = inst.component else {
        push(
            Code::RM_EMPTY_INSTANCE_COMPONENT,
            format!("the instance `{}` has no component", set.path(i)),
        );
        return;
    };
    let view = &r.views[c];
    let comp_name = &g.components[c].name;
    let expected = || {
        view.ancestors
            .iter()
            .map(|&a| g.components[a].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match inst.parent {
        None if !view.ancestors.is_empty() => push(
            Code::RM_MISSING_INSTANCE_PARENT,
            format!(
                "`{}` (a {comp_name}) must be placed under an instance of: {}",
                set.path(i),
                expected()
            ),
        ),
        Some(p) => {
            let parent_ok = set.instances[p].component.is_some_and(|pc| {
                view.ancestors.contains(&pc) && r.views[pc].children.contains(&c)
            });
            if !parent_ok {
                let pname = set.instances[p]
                    .component
                    .map_or("?", |pc| g.components[pc].name.as_str());
                let msg = if view.ancestors.is_empty() {
                    format!("`{}` is a {comp_name}, a root component: it cannot be placed under a {pname}", set.path(i))
                } else {
                    format!("`{}` (a {comp_name}) cannot be placed under a {pname}; possible parents: {}", set.path(i), expected())
                };
                push(Code::RM_INVALID_INSTANCE_PARENT, msg);
            }
        }
        None => {}
    }
    for (k, _) in &inst.overrides {
        if view.exports.contains_key(k) {
            continue;
        }
        match view.local_names.get(k) {
            None => push(
                Code::RM_MAGIC_INSTANCE_VARIABLE,
                format!(
                    "`{}` sets `{k}`, which its component `{comp_name}` does not export",
                    set.path(i)
                ),
            ),
            // As Roboconf: a bare name that stands for several full names is ambiguous,
            // even when they are one variable inherited under several prefixes (the
            // override then sets them all, see `resolve::exports_of`).
            Some(full) if full.len() > 1 => {
                let names: Vec<&str> = full.iter().map(String::as_str).collect();
                push(
                    Code::RM_AMBIGUOUS_OVERRIDING,
                    format!("`{}` sets `{k}`, which stands for several names: {}; the value goes to all of them (a full name sets only that one)", set.path(i), names.join(", ")),
                )
            }
            Some(_) => {}
        }
    }
    for (name, value) in instance_exports(g, r, set, i, None) {
        if value.as_deref().is_some_and(|v| !is_blank(v)) {
            continue;
        }
        if view.random.contains(&name) && inst.override_value(split_var(&name).1).is_none() {
            continue;
        }
        if name.eq_ignore_ascii_case("ip") || name.to_ascii_lowercase().ends_with(".ip") {
            continue;
        }
        push(
            Code::RM_MISSING_VARIABLE_VALUE,
            format!("`{}` exports `{name}` without a value: give it a default in the graph or a value in the instance", set.path(i)),
        );
    }
}
