//! What every definition file (scenario, kernel, image, nightly matrix) shares, at the bottom of
//! the module graph: it depends on nothing but `arch`. TOML diagnostics and units, the one name
//! rule, patch steps, module specs, and the loader, the only part here that touches the file
//! system.

pub mod diag;
pub mod load;
pub mod module;
pub mod name;
pub mod patch;
pub mod units;
