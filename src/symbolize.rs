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

type Reader = addr2line::gimli::EndianRcSlice<addr2line::gimli::RunTimeEndian>;

enum Lookup {
    /// A linked vmlinux: addresses as they are.
    Loader(Box<addr2line::Loader>),
    /// A relocatable module (`.ko`) with its DWARF relocated to synthetic section addresses.
    Context(Box<addr2line::Context<Reader>>),
}

struct Elf {
    lookup: Lookup,
    /// Symbol name → address (for a module: its section's synthetic base plus its value).
    symbols: HashMap<String, u64>,
}

pub struct Symbolizer {
    kernel: Option<Elf>,
    /// Module name (as printed in `[name]`) → its `.ko`.
    modules: HashMap<String, Elf>,
}

impl Symbolizer {
    /// A symbolizer for a vmlinux alone.
    pub fn open(vmlinux: &Path) -> Result<Self, Error> {
        Self::new(Some(vmlinux), &[])
    }

    /// A symbolizer for a kernel (when its vmlinux is known) and modules given as
    /// (name, `.ko` path). Module names match with `-` and `_` alike, as the kernel does.
    pub fn new(vmlinux: Option<&Path>, modules: &[(String, PathBuf)]) -> Result<Self, Error> {
        let kernel = match vmlinux {
            Some(v) => Some(open_vmlinux(v)?),
            None => None,
        };
        let mut m = HashMap::new();
        for (name, ko) in modules {
            m.insert(name.replace('-', "_"), open_module(ko)?);
        }
        Ok(Symbolizer { kernel, modules: m })
    }

    /// Source locations for `f`. `return_address`: the frame is a return address (a call
    /// trace entry), so the call instruction is one byte earlier.
    pub fn locate(&self, f: &Frame, return_address: bool) -> Vec<SourceLoc> {
        let elf = match &f.module {
            Some(m) => self.modules.get(&m.replace('-', "_")),
            None => self.kernel.as_ref(),
        };
        let Some(elf) = elf else {
            return Vec::new();
        };
        let (Some(base), Some(off)) = (elf.symbols.get(&f.function), f.offset) else {
            return Vec::new();
        };
        let addr = base + off - u64::from(return_address && off > 0);
        match &elf.lookup {
            Lookup::Loader(l) => l.find_frames(addr).map(locations).unwrap_or_default(),
            Lookup::Context(c) => c.find_frames(addr).skip_all_loads().map(locations).unwrap_or_default(),
        }
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

fn locations<R: addr2line::gimli::Reader>(mut frames: addr2line::FrameIter<'_, R>) -> Vec<SourceLoc> {
    let mut out = Vec::new();
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

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |why| Error::Parse {
        path: path.to_path_buf(),
        why,
    }
}

fn open_vmlinux(vmlinux: &Path) -> Result<Elf, Error> {
    use object::{Object, ObjectSymbol};
    let data = read(vmlinux)?;
    let file = object::File::parse(&*data).map_err(|e| parse_err(vmlinux)(e.to_string()))?;
    let mut symbols = HashMap::new();
    for s in file.symbols() {
        if let Ok(name) = s.name() {
            if s.address() != 0 {
                symbols.entry(name.to_string()).or_insert(s.address());
            }
        }
    }
    let loader = addr2line::Loader::new(vmlinux).map_err(|e| parse_err(vmlinux)(e.to_string()))?;
    Ok(Elf {
        lookup: Lookup::Loader(Box::new(loader)),
        symbols,
    })
}

/// A module is a relocatable object: every section starts at 0 and its DWARF refers to code
/// through relocations. Each allocated section gets its own synthetic address range (as a
/// linker would place them), the debug sections' relocations are applied against those
/// addresses, and symbols are looked up at the same addresses.
fn open_module(ko: &Path) -> Result<Elf, Error> {
    use addr2line::gimli;
    use object::{Object, ObjectSection, ObjectSymbol, RelocationKind, RelocationTarget, SectionFlags};
    let data = read(ko)?;
    let file = object::File::parse(&*data).map_err(|e| parse_err(ko)(e.to_string()))?;
    let mut bases: HashMap<usize, u64> = HashMap::new();
    let mut next = 0x1000u64;
    for sec in file.sections() {
        let alloc =
            matches!(sec.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0);
        if alloc && sec.size() > 0 {
            let align = sec.align().max(1);
            next = next.div_ceil(align) * align;
            bases.insert(sec.index().0, next);
            next += sec.size();
        }
    }
    let sym_addr = |idx: object::SymbolIndex| -> Option<u64> {
        let s = file.symbol_by_index(idx).ok()?;
        let base = s.section_index().map_or(0, |i| bases.get(&i.0).copied().unwrap_or(0));
        Some(base + s.address())
    };
    let mut symbols = HashMap::new();
    for s in file.symbols() {
        if let (Ok(name), Some(i)) = (s.name(), s.section_index()) {
            if let Some(base) = bases.get(&i.0) {
                if !name.is_empty() {
                    symbols.entry(name.to_string()).or_insert(base + s.address());
                }
            }
        }
    }
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Reader, String> {
        let Some(sec) = file.section_by_name(id.name()) else {
            return Ok(gimli::EndianRcSlice::new(std::rc::Rc::from(&[][..]), endian));
        };
        let mut bytes = sec.uncompressed_data().map_err(|e| e.to_string())?.into_owned();
        for (off, r) in sec.relocations() {
            if r.kind() != RelocationKind::Absolute {
                continue;
            }
            let target = match r.target() {
                RelocationTarget::Symbol(i) => sym_addr(i).unwrap_or(0),
                RelocationTarget::Section(i) => bases.get(&i.0).copied().unwrap_or(0),
                _ => 0,
            };
            let value = target.wrapping_add_signed(r.addend());
            let off = off as usize;
            match r.size() {
                64 if off + 8 <= bytes.len() => {
                    let b = if file.is_little_endian() {
                        value.to_le_bytes()
                    } else {
                        value.to_be_bytes()
                    };
                    bytes[off..off + 8].copy_from_slice(&b);
                }
                32 if off + 4 <= bytes.len() => {
                    let v = value as u32;
                    let b = if file.is_little_endian() {
                        v.to_le_bytes()
                    } else {
                        v.to_be_bytes()
                    };
                    bytes[off..off + 4].copy_from_slice(&b);
                }
                _ => {}
            }
        }
        Ok(gimli::EndianRcSlice::new(
            std::rc::Rc::from(bytes.into_boxed_slice()),
            endian,
        ))
    };
    let dwarf = gimli::Dwarf::load(load).map_err(parse_err(ko))?;
    let ctx = addr2line::Context::from_dwarf(dwarf).map_err(|e| parse_err(ko)(e.to_string()))?;
    Ok(Elf {
        lookup: Lookup::Context(Box::new(ctx)),
        symbols,
    })
}

/// DWARF paths are absolute paths in the build's source tree; keep them relative to it.
fn clean_path(p: &str) -> String {
    for marker in ["/src/", "/linux-source-6.1/"] {
        if let Some(i) = p.find(marker) {
            if p.contains("/kbuild/") || p.contains("/modules/") || marker != "/src/" {
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
        assert_eq!(
            clean_path("/root/.cache/repro/modules/crashmod-x86_64-f418eaaa493f3182/src/crashmod.c"),
            "crashmod.c"
        );
        assert_eq!(clean_path("/usr/src/linux-source-6.1/fs/dax.c"), "fs/dax.c");
    }
}
