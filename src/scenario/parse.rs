//! `parse`: the scenario file's sections, each checked by its own validator, into a
//! [`Scenario`]. Pure: the directories it names are left for the loader to check.

use super::actions;
use super::check::{Checked, File, DEFAULT_WORKLOAD_TIMEOUT};
use super::model::{Expect, Ignore, Node, PatchSet, Scenario, Workload};
use super::raw::{Raw, RawExpect};
use super::storage;
use crate::def::diag::from_toml;
use crate::def::patch;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The schema version this build understands.
pub const SCHEMA: u32 = 1;

const DEFAULT_CPUS: u32 = 2;
const DEFAULT_MEMORY_MIB: u64 = 1024;
const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_CPUS: u32 = 64;

/// Parses and validates `source`, read from `path`. `kernels` and `images` are the names defined
/// in `kernels/` and `images/`.
pub fn parse(path: &Path, source: &str, kernels: &[String], images: &[String]) -> Checked<Scenario> {
    let file = File { path, source };
    let raw: Raw = from_toml(path, source)?;
    schema(file, &raw)?;
    let image = file.known(&raw.image, "image", "image", images)?;
    let nodes = nodes(file, &raw, kernels)?;
    let workload = workload(file, &raw, &nodes)?;
    let expect = expect(file, &raw.expect)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let patchsets = patchsets(file, &raw, base)?;
    let (nfs_server, nfs_clients) = storage::nfs(file, &raw, &nodes)?;
    let devices = storage::devices(file, &raw, &nodes)?;
    storage::nfs_device(file, &raw, nfs_server.as_ref(), &devices)?;
    let (modules, needs_dirs) = actions::modules(file, &raw, base)?;
    let power_cut = actions::power_cut(file, &raw, &workload, nfs_server.as_ref(), &nfs_clients)?;
    Ok(Scenario {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: path.to_path_buf(),
        summary: raw.summary.clone(),
        description: raw.description.clone(),
        image,
        tags: raw.tags.clone(),
        boot_timeout: raw.vm.boot_timeout.map_or(DEFAULT_BOOT_TIMEOUT, |t| t.0),
        cmdline: raw.vm.cmdline.clone(),
        setup: actions::steps_on(file, &raw.setup, "setup", &nodes)?,
        background: actions::steps_on(file, &raw.background, "background", &nodes)?,
        faults: actions::faults(file, &raw, &nodes)?,
        vars: actions::vars(file, &raw)?,
        disks: devices.disks,
        pmem: devices.pmem,
        dm: devices.dm,
        filesystems: devices.filesystems,
        original: raw.original.clone(),
        nodes,
        workload,
        expect,
        patchsets,
        nfs_server,
        nfs_clients,
        active_set: None,
        modules,
        needs_dirs,
        kernel_source: None,
        full_debug_info: false,
        power_cut,
    })
}

fn schema(file: File, raw: &Raw) -> Checked<()> {
    match &raw.schema {
        Some(schema) if *schema.get_ref() != SCHEMA => Err(file.diag(
            schema.span(),
            "schema",
            format!(
                "unsupported schema version {}, this repro reads version {SCHEMA}",
                schema.get_ref()
            ),
        )),
        _ => Ok(()),
    }
}

fn cpus(file: File, cpus: &Option<toml::Spanned<u32>>, key: &str, default: u32) -> Checked<u32> {
    let Some(c) = cpus else { return Ok(default) };
    let count = *c.get_ref();
    if (1..=MAX_CPUS).contains(&count) {
        Ok(count)
    } else {
        Err(file.diag(
            c.span(),
            key,
            format!("cpus must be between 1 and {MAX_CPUS}, got {count}"),
        ))
    }
}

/// `[[nodes]]`, or the one default node `guest`, with `[vm]`'s sizes where a node sets none.
fn nodes(file: File, raw: &Raw, kernels: &[String]) -> Checked<Vec<Node>> {
    let kernel = file.kernel(&raw.kernel, "kernel", kernels)?;
    let cpus_all = cpus(file, &raw.vm.cpus, "vm.cpus", DEFAULT_CPUS)?;
    let memory_mib = raw.vm.memory.map_or(DEFAULT_MEMORY_MIB, |m| m.0);
    if raw.nodes.is_empty() {
        return Ok(vec![Node {
            name: "guest".into(),
            kernel,
            arch: raw.arch,
            cpus: cpus_all,
            memory_mib,
        }]);
    }
    let mut nodes: Vec<Node> = Vec::new();
    for (i, n) in raw.nodes.iter().enumerate() {
        let key = format!("nodes[{i}]");
        let name = file.name(&n.name, &format!("{key}.name"), "node")?;
        if nodes.iter().any(|m| m.name == name) {
            return Err(file.diag(
                n.name.span(),
                &format!("{key}.name"),
                format!("duplicate node name `{name}`"),
            ));
        }
        nodes.push(Node {
            name,
            kernel: match &n.kernel {
                Some(k) => file.kernel(k, &format!("{key}.kernel"), kernels)?,
                None => kernel.clone(),
            },
            arch: n.arch.unwrap_or(raw.arch),
            cpus: cpus(file, &n.cpus, &format!("{key}.cpus"), cpus_all)?,
            memory_mib: n.memory.map_or(memory_mib, |m| m.0),
        });
    }
    Ok(nodes)
}

fn workload(file: File, raw: &Raw, nodes: &[Node]) -> Checked<Workload> {
    let workload_raw = &raw.workload;
    Ok(Workload {
        script: workload_raw.script.clone(),
        node: file.node(nodes, &workload_raw.node, "workload.node", 0)?,
        timeout: workload_raw.timeout.map_or(DEFAULT_WORKLOAD_TIMEOUT, |t| t.0),
        iterations: file.positive(&workload_raw.iterations, "workload.iterations")?,
        parallel: file.positive(&workload_raw.parallel, "workload.parallel")?,
        shell: workload_raw.shell.clone().unwrap_or_else(|| "/bin/bash".into()),
        restore_snapshot: restore(file, raw, nodes)?,
        placeholder: workload_raw.placeholder.as_ref().filter(|p| *p.get_ref()).map(|p| {
            Box::new(file.diag(
                p.span(),
                "workload.placeholder",
                "the workload is a placeholder (`repro new` wrote it): write the steps that make the crash happen in `workload.script`, then delete this key",
            ))
        }),
    })
}

/// `workload.restore`: `snapshot` only where a snapshot can hold the whole guest.
fn restore(file: File, raw: &Raw, nodes: &[Node]) -> Checked<bool> {
    let Some(restore) = &raw.workload.restore else {
        return Ok(false);
    };
    let why = match restore.get_ref().as_str() {
        "none" => return Ok(false),
        "snapshot" if nodes.len() > 1 => "restoring a snapshot works with one node only",
        "snapshot" if raw.workload.parallel.as_ref().is_some_and(|p| *p.get_ref() > 1) => {
            "restoring a snapshot runs iterations one at a time: drop `parallel`"
        }
        "snapshot" if !raw.disks.is_empty() => {
            "restoring a snapshot needs every writable disk to be qcow2, and [[disks]] are raw"
        }
        "snapshot" => return Ok(true),
        other => {
            return Err(file.diag(
                restore.span(),
                "workload.restore",
                format!("unknown restore `{other}`, expected none or snapshot"),
            ))
        }
    };
    Err(file.diag(restore.span(), "workload.restore", why))
}

fn expect(file: File, raw: &RawExpect) -> Checked<Expect> {
    let title_regex = match &raw.title_regex {
        Some(r) => Some(file.regex(r, "expect.title_regex")?),
        None => None,
    };
    let mut ignore = Vec::new();
    for (i, ig) in raw.ignore.iter().enumerate() {
        ignore.push(Ignore {
            title_regex: file.regex(&ig.title_regex, &format!("expect.ignore[{i}].title_regex"))?,
            arch: ig.arch,
        });
    }
    let exit_status = match &raw.exit_status {
        Some(e) if !(1..=255).contains(e.get_ref()) => {
            return Err(file.diag(
                e.span(),
                "expect.exit_status",
                "must be between 1 and 255 (0 means the workload passed)",
            ))
        }
        e => e.as_ref().map(|e| *e.get_ref()),
    };
    Ok(Expect {
        title: raw.title.clone(),
        title_regex,
        frames: raw.frames.clone(),
        ignore,
        marker: raw.marker.clone().filter(|m| !m.is_empty()),
        exit_status,
    })
}

/// `[patchsets.NAME]`: patch steps with their files resolved against the scenario's folder.
fn patchsets(file: File, raw: &Raw, base: &Path) -> Checked<BTreeMap<String, PatchSet>> {
    let mut sets = BTreeMap::new();
    for (name, set) in &raw.patchsets {
        let name = file.name(name, &format!("patchsets.{}", name.get_ref()), "patch set")?;
        let mut steps = Vec::new();
        for (i, step) in set.patch.iter().enumerate() {
            let resolved = step.get_ref().resolve(base);
            let key = format!("patchsets.{name}.patch[{i}]");
            steps.push(resolved.ok_or_else(|| file.diag(step.span(), &key, patch::ONE_KEY))?);
        }
        let summary = set.summary.clone();
        sets.insert(name, PatchSet { summary, steps });
    }
    Ok(sets)
}
