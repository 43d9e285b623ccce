//! Everything that differs between guest architectures, in one table.

use crate::arch::Arch;
use serde::Serialize;
use std::fmt;

/// How a guest's CPU runs: under KVM, or emulated by TCG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

pub struct ArchSpec {
    pub qemu: &'static str,
    pub machine: &'static str,
    pub tcg_cpu: &'static str,
    pub kvm_cpu: &'static str,
    /// The kernel's name for the first serial port.
    pub console: &'static str,
    /// A device that turns a guest panic into a QMP GUEST_PANICKED event.
    pub pvpanic: &'static str,
}

const X86_64: ArchSpec = ArchSpec {
    qemu: "qemu-system-x86_64",
    machine: "q35",
    tcg_cpu: "max",
    kvm_cpu: "host",
    console: "ttyS0",
    pvpanic: "pvpanic",
};

const AARCH64: ArchSpec = ArchSpec {
    qemu: "qemu-system-aarch64",
    machine: "virt,gic-version=max",
    // `max` alone boots about 4x slower under TCG: its pointer authentication uses the
    // architected QARMA algorithm. The implementation-defined one is cheap to emulate.
    tcg_cpu: "max,pauth-impdef=on",
    kvm_cpu: "host",
    console: "ttyAMA0",
    pvpanic: "pvpanic-pci",
};

pub fn spec(arch: Arch) -> &'static ArchSpec {
    match arch {
        Arch::X86_64 => &X86_64,
        Arch::Aarch64 => &AARCH64,
    }
}

impl ArchSpec {
    pub fn cpu(&self, accel: Accel) -> &'static str {
        match accel {
            Accel::Kvm => self.kvm_cpu,
            Accel::Tcg => self.tcg_cpu,
        }
    }
}
