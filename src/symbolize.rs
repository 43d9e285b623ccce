//! Symbolization: `func+0x1a/0x40` frames turned into file:line, inlined functions included, from
//! a kernel's vmlinux with DWARF (in process, with gimli/addr2line; no binutils). Frames in
//! modules, or without an offset, are left as printed.

use repro_oops::{Frame, Report, SourceLoc};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Parse { path: PathBuf, why: String },
}

pub struct Symbolizer {
    loader: addr2line::Loader,
    /// Symbol name → address, from the ELF symbol table.
    symbols: HashMap<String, u64>,
}

impl Symbolizer {
    pub fn open(vmlinux: &Path) -> Result<Self, Error> {
        use object::{Object, ObjectSymbol};
        let data = std::fs::read(vmlinux).map_err(|source| Error::Read {
            path: vmlinux.to_path_buf(),
            source,
        })?;
        let file = object::File::parse(&*data).map_err(|e| Error::Parse {
            path: vmlinux.to_path_buf(),
            why: e.to_string(),
        })?;
        let mut symbols = HashMap::new();
        for s in file.symbols() {
            if let Ok(name) = s.name() {
                if s.address() != 0 {
                    symbols.entry(name.to_string()).or_insert(s.address());
                }
            }
        }
        let loader = addr2line::Loader::new(vmlinux).map_err(|e| Error::Parse {
            path: vmlinux.to_path_buf(),
            why: e.to_string(),
        })?;
        Ok(Symbolizer { loader, symbols })
    }

    /// Source locations for `f`. `return_address`: the frame is a return address (a call
    /// trace entry), so the call instruction is one byte earlier.
    pub fn locate(&self, f: &Frame, return_address: bool) -> Vec<SourceLoc> {
        if f.module.is_some() {
            return Vec::new();
        }
        let (Some(base), Some(off)) = (self.symbols.get(&f.function), f.offset) else {
            return Vec::new();
        };
        let addr = base + off - u64::from(return_address && off > 0);
        let mut out = Vec::new();
        let Ok(mut frames) = self.loader.find_frames(addr) else {
            return out;
        };
        while let Ok(Some(fr)) = frames.next() {
            let function = fr
                .function
                .as_ref()
                .and_then(|n| n.raw_name().ok().map(|s| s.to_string()))
                .unwrap_or_else(|| "??".to_string());
            let (file, line) = fr
                .location
                .as_ref()
                .map_or((None, None), |l| (l.file.map(clean_path), l.line));
            out.push(SourceLoc {
                function,
                file,
                line,
                inlined: true,
            });
        }
        if let Some(last) = out.last_mut() {
            last.inlined = false;
        }
        out
    }

    /// Symbolizes every frame of `r`, and its faulting instruction. Returns how many frames
    /// got source locations.
    pub fn report(&self, r: &mut Report) -> usize {
        let mut n = 0;
        if let Some(f) = r.faulting_frame.as_mut() {
            f.source = self.locate(f, false);
            n += usize::from(!f.source.is_empty());
        }
        let pc = r.faulting_frame.clone();
        for (i, f) in r.frames.iter_mut().enumerate() {
            // On arm64 the first trace entry is the faulting pc itself, not a return address.
            let is_pc = i == 0
                && pc
                    .as_ref()
                    .is_some_and(|p| p.function == f.function && p.offset == f.offset);
            f.source = self.locate(f, !is_pc);
            n += usize::from(!f.source.is_empty());
        }
        n
    }
}

/// DWARF paths are absolute paths in the build's source tree; keep them relative to it.
fn clean_path(p: &str) -> String {
    for marker in ["/src/", "/linux-source-6.1/"] {
        if let Some(i) = p.find(marker) {
            if p.contains("/kbuild/") || marker != "/src/" {
                return p[i + marker.len()..].to_string();
            }
        }
    }
    p.to_string()
}

/// "fs/nfs/write.c:808" style, with inlined functions: one line per location.
pub fn describe(f: &Frame) -> Vec<String> {
    f.source
        .iter()
        .map(|s| {
            format!(
                "{}{} ({}:{})",
                if s.inlined { "inlined " } else { "" },
                s.function,
                s.file.as_deref().unwrap_or("?"),
                s.line.map_or("?".to_string(), |l| l.to_string())
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_relative_to_the_source_tree() {
        assert_eq!(
            clean_path("/root/.cache/repro/kbuild/x86_64-abc/src/fs/nfs/write.c"),
            "fs/nfs/write.c"
        );
        assert_eq!(clean_path("fs/nfs/write.c"), "fs/nfs/write.c");
        assert_eq!(clean_path("/usr/src/linux-source-6.1/fs/dax.c"), "fs/dax.c");
    }
}
