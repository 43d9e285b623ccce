//! Guests under QEMU: the per-arch table, pure argv builders, the accelerator probe, the QMP
//! client, and [`Instance`], an owned guest that is killed (with its process group) on drop.

pub mod accel;
pub mod aio;
pub mod argv;
pub mod dump;
pub mod gdb;
mod instance;
pub mod qmp;
pub mod table;
pub mod unix;

pub use accel::{Accel, Choice};
pub use argv::{Config, Disk, Pmem};
pub use instance::{free_port, Error, Instance, Tails, CONSOLE_LOG};
