//! `report.json`'s [`RunReport`], made from what a run observed. Pure.

use super::verdict::{self, Observed};
use crate::report::{KernelInfo, NodeInfo, RunReport, SuspectStall, Timings, WorkloadInfo};
use crate::scenario::Scenario;
use crate::vm::table::Accel;
use repro_oops::Report;

/// What one node was, as far as the report tells.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    pub kernel: Option<KernelInfo>,
    pub accel: Option<Accel>,
    pub accel_reason: Option<String>,
    pub qemu_command: Option<String>,
    /// How repro's commands reached the node (`agent` or `ssh`), once it was up.
    pub link: Option<&'static str>,
}

/// Everything the report is made of.
pub struct Facts<'a> {
    pub scenario: &'a Scenario,
    /// One per scenario node.
    pub nodes: Vec<NodeFacts>,
    pub observed: Observed,
    /// Known splats the scenario ignores.
    pub ignored: Vec<Report>,
    pub timings: Timings,
    /// Workload iterations completed.
    pub completed: u32,
    pub run_dir: String,
    pub started_at: u64,
    pub vmcores: Vec<String>,
    pub debugger: Vec<crate::report::DebugSession>,
    pub evidence_lost: Vec<String>,
}

/// The verdict, decided once, and the report around it.
pub fn report(facts: Facts<'_>) -> RunReport {
    let scenario = facts.scenario;
    let decision = verdict::decide(&scenario.expect, &facts.observed);
    let workload = &scenario.workload;
    let workload_node = facts.nodes.get(workload.node).cloned().unwrap_or_default();
    let nodes = scenario
        .nodes
        .iter()
        .zip(&facts.nodes)
        .map(|(n, f)| NodeInfo {
            name: n.name.clone(),
            arch: n.arch,
            kernel: f.kernel.clone(),
            accel: f.accel,
            cpus: n.cpus,
            memory_mib: n.memory_mib,
            qemu_command: f.qemu_command.clone(),
            link: f.link,
        })
        .collect();
    RunReport {
        repro_version: env!("CARGO_PKG_VERSION"),
        scenario: scenario.name.clone(),
        scenario_file: scenario.path.display().to_string(),
        verdict: decision.verdict,
        reason: decision.reason,
        exit_code: decision.verdict.exit_code(),
        crash: decision.crash.map(|i| facts.observed.crashes[i].clone()),
        crashes: facts.observed.crashes.clone(),
        ignored_crashes: facts.ignored,
        kernel: workload_node.kernel,
        arch: scenario.nodes[workload.node].arch,
        accel: workload_node.accel,
        accel_reason: workload_node.accel_reason,
        nodes,
        workload: WorkloadInfo {
            node: scenario.nodes[workload.node].name.clone(),
            iterations: workload.iterations,
            parallel: workload.parallel,
            timeout_s: workload.timeout.as_secs(),
            iterations_completed: facts.completed,
            outcome: format!("{:?}", facts.observed.workload),
        },
        timings: facts.timings,
        run_dir: facts.run_dir,
        started_at: facts.started_at,
        vmcores: facts.vmcores,
        debugger: facts.debugger,
        evidence_lost: facts.evidence_lost,
        suspect_stalls: facts
            .observed
            .suspect
            .iter()
            .map(|(r, why)| SuspectStall {
                title: r.title.clone(),
                host: why.clone(),
            })
            .collect(),
        infra: decision.infra,
        interrupted: facts.observed.interrupted,
    }
}
