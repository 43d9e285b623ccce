//! Fast tests of the repro binary: no guests are booted.

mod fixture;

mod check;
mod kernel;
mod new;
mod usage;
