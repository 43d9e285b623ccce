//! Guest images: a Debian userland per arch (mmdebstrap, no root needed), turned into layers
//! that QEMU boots quickly:
//! - the base root filesystem, an ext4 image cached by a key of its definition, booted through
//!   a per-run copy-on-write overlay;
//! - a per-kernel modules disk and a tiny boot initramfs holding only the modules needed to reach
//!   the root disk;
//! - a per-run cpio layer (SSH key, node identity) appended to the boot initramfs.

mod cpio;
mod error;
mod layers;
mod rootfs;

pub use error::Error;
pub use layers::{boot_initramfs, modules_disk, run_initrd, RunLayer};
pub use rootfs::{build, find, names, Built, Definition};
