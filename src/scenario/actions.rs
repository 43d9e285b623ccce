//! What runs besides the workload: setup and background steps, faults, the power cut, the
//! scenario's out-of-tree modules and its variables.

use super::check::{Checked, File, DEFAULT_WORKLOAD_TIMEOUT};
use super::model::{Fault, FaultAction, FaultWhen, NfsClient, NfsServer, Node, PowerCut, StepOn, Workload};
use super::raw::{Raw, RawStepOn};
use crate::def::diag::NeedsDir;
use crate::def::module::ModuleSpec;
use crate::def::name;
use std::collections::BTreeMap;
use std::path::Path;

/// `[[setup]]` or `[[background]]` (`what`).
pub(super) fn steps_on(file: File, raw: &[RawStepOn], what: &str, nodes: &[Node]) -> Checked<Vec<StepOn>> {
    raw.iter()
        .enumerate()
        .map(|(i, step)| {
            Ok(StepOn {
                node: file.node(nodes, &step.node, &format!("{what}[{i}].node"), 0)?,
                script: step.script.clone(),
            })
        })
        .collect()
}

pub(super) fn faults(file: File, raw: &Raw, nodes: &[Node]) -> Checked<Vec<Fault>> {
    let mut faults = Vec::new();
    for (i, spanned) in raw.faults.iter().enumerate() {
        let key = format!("faults[{i}]");
        let fault = spanned.get_ref();
        let action = match fault.action.get_ref().as_str() {
            "link-down" => FaultAction::LinkDown,
            "link-up" => FaultAction::LinkUp,
            "stop" => FaultAction::Stop,
            "cont" => FaultAction::Cont,
            other => {
                return Err(file.diag(
                    fault.action.span(),
                    &format!("{key}.action"),
                    format!("unknown action `{other}`, expected link-down, link-up, stop or cont"),
                ))
            }
        };
        let when = match (&fault.at, &fault.marker) {
            (Some(t), None) => FaultWhen::At(t.0),
            (None, Some(m)) if !m.is_empty() => FaultWhen::Marker(m.clone()),
            _ => {
                return Err(file.diag(
                    spanned.span(),
                    &key,
                    "a fault needs exactly one of `at` (a time after the workload starts) or `marker`",
                ))
            }
        };
        let node = file.node(nodes, &fault.node, &format!("{key}.node"), 0)?;
        if matches!(action, FaultAction::LinkDown | FaultAction::LinkUp) && nodes.len() < 2 {
            return Err(file.diag(
                fault.action.span(),
                &format!("{key}.action"),
                "link faults need a second node: a single guest has no private link",
            ));
        }
        faults.push(Fault { node, action, when });
    }
    Ok(faults)
}

/// `[[module]]`, and the source directories the loader must find.
pub(super) fn modules(file: File, raw: &Raw, base: &Path) -> Checked<(Vec<ModuleSpec>, Vec<NeedsDir>)> {
    let mut modules: Vec<ModuleSpec> = Vec::new();
    let mut needs = Vec::new();
    for (i, m) in raw.module.iter().enumerate() {
        let key = format!("module[{i}]");
        let name = file.name(&m.name, &format!("{key}.name"), "module")?;
        if modules.iter().any(|o| o.name == name) {
            return Err(file.diag(
                m.name.span(),
                &format!("{key}.name"),
                format!("duplicate module `{name}`"),
            ));
        }
        let source = base.join(m.source.get_ref());
        needs.push(NeedsDir {
            path: source.clone(),
            diagnostic: file.diag(
                m.source.span(),
                &format!("{key}.source"),
                format!("{} is not a directory", source.display()),
            ),
        });
        modules.push(ModuleSpec {
            name,
            source,
            rev: m.rev.clone(),
        });
    }
    Ok((modules, needs))
}

pub(super) fn vars(file: File, raw: &Raw) -> Checked<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for (k, v) in &raw.vars {
        if !name::is_var_name(k.get_ref()) {
            return Err(file.diag(
                k.span(),
                &format!("vars.{}", k.get_ref()),
                "a variable name uses letters, digits and `_`, and does not start with a digit",
            ));
        }
        vars.insert(k.get_ref().clone(), v.clone());
    }
    Ok(vars)
}

/// `[power_cut]`: only for a workload node whose storage is local and not restored from a
/// snapshot.
pub(super) fn power_cut(
    file: File,
    raw: &Raw,
    workload: &Workload,
    nfs_server: Option<&NfsServer>,
    nfs_clients: &[NfsClient],
) -> Checked<Option<PowerCut>> {
    let Some(spanned) = &raw.power_cut else { return Ok(None) };
    let node = workload.node;
    let cut = spanned.get_ref();
    let why = if workload.restore_snapshot {
        Some("a power cut cannot follow a snapshot restore: drop `workload.restore`")
    } else if nfs_server.is_some_and(|n| n.node == node) || nfs_clients.iter().any(|c| c.node == node) {
        Some("after a power cut repro mounts local storage again, not NFS: the workload's node must not be an NFS server or client")
    } else if cut.marker.as_deref() == Some("") {
        Some("an empty `marker` would match every line: drop it to cut after the workload")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(file.diag(spanned.span(), "power_cut", why));
    }
    Ok(Some(PowerCut {
        marker: cut.marker.clone(),
        check: Workload {
            script: cut.script.clone(),
            node,
            timeout: cut.timeout.map_or(DEFAULT_WORKLOAD_TIMEOUT, |t| t.0),
            iterations: 1,
            parallel: 1,
            shell: workload.shell.clone(),
            restore_snapshot: false,
            placeholder: None,
        },
    }))
}
