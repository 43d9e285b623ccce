//! The module build tree of a source kernel built with `CONFIG_MODULES`: the files
//! `make -C TREE M=DIR modules` reads, gathered from the build slot's worktree and `O=`
//! directory into one directory of the cached artifacts. The slot is rewritten by the next build
//! in it, so modules cannot be built against the slot itself.
//!
//! The selection is what the kernel's own Debian packaging (`scripts/package/builddeb`) puts in
//! a `linux-headers` package: the top and arch Makefiles, `include/` and `scripts/`, the arch's
//! include and scripts directories, and from the build the generated headers, `Module.symvers`,
//! the config and the host tools (`fixdep`, `modpost`, `objtool`).

use crate::arch::Arch;
use std::path::{Path, PathBuf};

/// The directory name under a built kernel's cache entry.
pub const DIR: &str = "headers";

/// The kernel's `SRCARCH` directory name under `arch/`.
fn srcarch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86",
        Arch::Aarch64 => "arm64",
    }
}

/// Copies the module build tree of the build in `src` (worktree) and `obj` (`O=`) to `dest`.
pub fn export(src: &Path, obj: &Path, arch: Arch, dest: &Path) -> std::io::Result<()> {
    let a = PathBuf::from("arch").join(srcarch(arch));
    let mut from_src = Vec::new();
    for dir in [PathBuf::new(), a.clone()] {
        for e in std::fs::read_dir(src.join(&dir))? {
            let name = e?.file_name();
            if name.to_string_lossy().starts_with("Makefile") {
                from_src.push(dir.join(name));
            }
        }
    }
    for dir in [
        PathBuf::from("include"),
        PathBuf::from("scripts"),
        a.join("include"),
        a.join("scripts"),
    ] {
        files(src, &dir, &mut from_src)?;
    }
    let mut from_obj = Vec::new();
    for dir in [a.join("include"), PathBuf::from("include"), PathBuf::from("scripts")] {
        files(obj, &dir, &mut from_obj)?;
    }
    for f in ["Module.symvers", "tools/objtool/objtool"] {
        if obj.join(f).is_file() {
            from_obj.push(PathBuf::from(f));
        }
    }
    for (root, list) in [(src, &from_src), (obj, &from_obj)] {
        for rel in list {
            let to = dest.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // `copy` follows links and keeps the mode (host tools stay executable).
            std::fs::copy(root.join(rel), &to)?;
        }
    }
    std::fs::copy(obj.join(".config"), dest.join(".config"))?;
    Ok(())
}

/// The regular files (and links to them) under `root/dir`, relative to `root`; nothing when
/// `dir` does not exist (not every arch has a `scripts` directory).
fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return Ok(());
    };
    for e in entries {
        let e = e?;
        let rel = dir.join(e.file_name());
        let meta = std::fs::metadata(e.path());
        match meta {
            Ok(m) if m.is_dir() => files(root, &rel, out)?,
            Ok(m) if m.is_file() => out.push(rel),
            // A dangling link: nothing a module build can read.
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, rel).unwrap();
    }

    #[test]
    fn the_tree_holds_what_a_module_build_reads_and_nothing_of_the_build_itself() {
        let t = tempfile::tempdir().unwrap();
        let (src, obj, dest) = (t.path().join("src"), t.path().join("obj"), t.path().join("dest"));
        for f in [
            "Makefile",
            "arch/x86/Makefile",
            "arch/x86/Makefile_32.cpu",
            "arch/x86/include/asm/page.h",
            "arch/x86/kernel/setup.c",
            "arch/arm64/include/asm/page.h",
            "include/linux/module.h",
            "scripts/Makefile.build",
            "fs/xfs/xfs_inode.c",
        ] {
            write(&src, f);
        }
        for f in [
            ".config",
            "Module.symvers",
            "include/generated/autoconf.h",
            "include/config/auto.conf",
            "arch/x86/include/generated/asm/orc_hash.h",
            "scripts/mod/modpost",
            "tools/objtool/objtool",
            "vmlinux",
            "fs/xfs/xfs_inode.o",
        ] {
            write(&obj, f);
        }
        export(&src, &obj, Arch::X86_64, &dest).unwrap();
        let mut have = Vec::new();
        files(&dest, Path::new(""), &mut have).unwrap();
        let mut have: Vec<String> = have.iter().map(|p| p.display().to_string()).collect();
        have.sort();
        assert_eq!(
            have,
            [
                ".config",
                "Makefile",
                "Module.symvers",
                "arch/x86/Makefile",
                "arch/x86/Makefile_32.cpu",
                "arch/x86/include/asm/page.h",
                "arch/x86/include/generated/asm/orc_hash.h",
                "include/config/auto.conf",
                "include/generated/autoconf.h",
                "include/linux/module.h",
                "scripts/Makefile.build",
                "scripts/mod/modpost",
                "tools/objtool/objtool",
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("scripts/mod/modpost")).unwrap(),
            "scripts/mod/modpost"
        );
    }
}
