//! Patch steps, as kernel definitions and scenario patch sets write them: apply a patch file,
//! revert a commit or an earlier patch, cherry-pick a commit.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One step of a patch series, as written: exactly one of the keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPatchStep {
    /// A patch file to apply.
    pub apply: Option<String>,
    /// A commit to revert, or a patch file applied earlier in the series.
    pub revert: Option<String>,
    /// A commit to cherry-pick.
    pub cherry_pick: Option<String>,
}

/// One step of a patch series, on a tree in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchStep {
    /// Apply a patch file (git format-patch or plain unified diff).
    Apply(PathBuf),
    Revert(RevertTarget),
    CherryPick(String),
}

/// What a revert undoes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevertTarget {
    /// A commit (any revision git understands).
    Rev(String),
    /// A patch file applied earlier in the series.
    Patch(PathBuf),
}

impl RawPatchStep {
    /// The step, with file paths resolved against `base`; `None` unless exactly one key is set.
    pub fn resolve(&self, base: &Path) -> Option<PatchStep> {
        let is_patch = |s: &str| s.ends_with(".patch") || s.ends_with(".diff");
        match (&self.apply, &self.revert, &self.cherry_pick) {
            (Some(a), None, None) => Some(PatchStep::Apply(base.join(a))),
            (None, Some(r), None) if is_patch(r) => Some(PatchStep::Revert(RevertTarget::Patch(base.join(r)))),
            (None, Some(r), None) => Some(PatchStep::Revert(RevertTarget::Rev(r.clone()))),
            (None, None, Some(c)) => Some(PatchStep::CherryPick(c.clone())),
            _ => None,
        }
    }
}

/// What [`RawPatchStep::resolve`] wants.
pub const ONE_KEY: &str = "a patch step needs exactly one of `apply`, `revert`, `cherry_pick`";

impl PatchStep {
    /// `apply x.patch`, `revert abc`, `cherry-pick abc`.
    pub fn describe(&self) -> String {
        match self {
            PatchStep::Apply(p) => format!("apply {}", p.display()),
            PatchStep::Revert(RevertTarget::Rev(r)) => format!("revert {r}"),
            PatchStep::Revert(RevertTarget::Patch(p)) => format!("revert {}", p.display()),
            PatchStep::CherryPick(r) => format!("cherry-pick {r}"),
        }
    }
}
