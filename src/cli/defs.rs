//! The commands about definitions and artifacts: check, list, kernel list and fetch, image
//! build, prepare, and oops parse.

use super::exit::{Done, Failure};
use crate::arch::Arch;
use crate::catalog::{self, Catalog};
use crate::def::load::Roots;
use crate::{image, kernel};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs blocking work off the async threads; a failure is the whole source chain.
pub async fn blocking<T, E>(f: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, Failure>
where
    T: Send + 'static,
    E: std::error::Error + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::CannotTest(crate::errors::chain(&e))),
        Err(e) => Err(Failure::CannotTest(e.to_string())),
    }
}

/// Prints a definition that did not load, and counts it.
fn invalid(e: &catalog::Error, count: &mut usize) {
    *count += 1;
    match e {
        catalog::Error::Invalid(d) => eprintln!("error: {d}"),
        other => eprintln!("error: {}", crate::errors::chain(other)),
    }
}

pub fn check(roots: &Roots, names: &[String]) -> Result<Done, Failure> {
    let catalog = Catalog::new(roots.clone());
    let args: Vec<String> = if names.is_empty() {
        crate::def::load::list_files(&roots.scenarios)
            .unwrap_or_default()
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    } else {
        names.to_vec()
    };
    let mut bad = 0;
    for a in &args {
        match catalog.scenario(a) {
            Ok(s) if s.workload.placeholder.is_some() => println!(
                "ok: {} ({}; its workload is a placeholder: `repro run` waits until it is written)",
                s.name,
                s.path.display()
            ),
            Ok(s) => println!("ok: {} ({})", s.name, s.path.display()),
            Err(e) => invalid(&e, &mut bad),
        }
    }
    Ok(Done::Checked { invalid: bad })
}

pub fn list(roots: &Roots) -> Result<Done, Failure> {
    let catalog = Catalog::new(roots.clone());
    let all = catalog
        .scenarios()
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", roots.scenarios.display())))?;
    let mut out = std::io::stdout().lock();
    // The name column is 28 wide, wider when a file stem needs it.
    let width = all
        .iter()
        .filter_map(|(f, _)| f.file_stem().map(|s| s.len()))
        .fold(28, usize::max);
    let mut bad = 0;
    for (_, loaded) in all {
        match loaded {
            Ok(s) => {
                let arches: Vec<&str> = s.nodes.iter().map(|n| n.arch.as_str()).collect();
                let _ = writeln!(out, "{:<width$} {:<8} {}", s.name, arches.join(","), s.summary);
            }
            Err(e) => invalid(&e, &mut bad),
        }
    }
    Ok(Done::Checked { invalid: bad })
}

fn kernel_error(e: kernel::Error) -> Failure {
    match e {
        kernel::Error::Invalid(d) => Failure::Invalid(d),
        other => Failure::Usage(crate::errors::chain(&other)),
    }
}

pub fn kernel_list(roots: &Roots, json: bool) -> Result<Done, Failure> {
    let defs = kernel::load_all(&roots.kernels).map_err(kernel_error)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&defs).unwrap_or_default());
        return Ok(Done::Ok);
    }
    for d in defs {
        let arches: Vec<&str> = d.arches().iter().map(|a| a.as_str()).collect();
        println!(
            "{:<24} {:<7} {:<15} {}",
            d.name,
            kernel::kind_name(d.kind),
            arches.join(","),
            d.summary
        );
    }
    Ok(Done::Ok)
}

/// The archive's cloud kernels, oldest first, arch by arch.
pub fn kernel_available(json: bool, arch: Option<Arch>) -> Result<Done, Failure> {
    let all = kernel::available().map_err(|e| Failure::CannotTest(crate::errors::chain(&e)))?;
    let shown: Vec<_> = all.iter().filter(|p| arch.is_none_or(|a| p.arch == a)).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
        return Ok(Done::Ok);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<24} {:<8} {:<9} {:<20} {:<4} {:<7} package",
        "name", "arch", "upstream", "debian version", "dbg", "headers"
    );
    for p in shown {
        let yes = |b: bool| if b { "yes" } else { "-" };
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:<9} {:<20} {:<4} {:<7} {}",
            p.name,
            p.arch.as_str(),
            p.upstream.to_string(),
            p.version,
            yes(p.dbg),
            yes(p.headers),
            p.package
        );
    }
    Ok(Done::Ok)
}

pub async fn kernel_fetch(
    roots: &Roots,
    name: String,
    arch: Arch,
    debug_info: kernel::DebugInfo,
) -> Result<Done, Failure> {
    let dir = roots.kernels.clone();
    let a = blocking(move || {
        kernel::find(&dir, &name).and_then(|d| d.with_debug_info(debug_info).resolve(arch, &|m| eprintln!("{m}")))
    })
    .await?;
    println!("{} {} {}", a.name, a.arch, a.origin);
    println!("image: {}", a.image.display());
    if let Some(m) = &a.modules {
        println!("modules: {}", m.display());
    }
    if let Some(v) = &a.vmlinux {
        println!("vmlinux: {}", v.display());
    }
    Ok(Done::Ok)
}

pub async fn image_build(roots: &Roots, name: String, arch: Arch) -> Result<Done, Failure> {
    let dir = roots.images.clone();
    let built =
        blocking(move || image::find(&dir, &name).and_then(|d| image::build(&d, arch, &|m| eprintln!("{m}")))).await?;
    println!("{}", built.rootfs.display());
    Ok(Done::Ok)
}

/// Fetches kernels and builds images for scenarios, without booting (warms the cache).
pub async fn prepare(roots: &Roots, names: &[String], arches: &[Arch]) -> Result<Done, Failure> {
    let catalog = Catalog::new(roots.clone());
    for name in names {
        let s = catalog.scenario(name)?;
        let mut pairs: Vec<(String, Arch)> = Vec::new();
        for n in &s.nodes {
            let list = if arches.is_empty() {
                vec![n.arch]
            } else {
                arches.to_vec()
            };
            for a in list {
                if !pairs.contains(&(n.kernel.clone(), a)) {
                    pairs.push((n.kernel.clone(), a));
                }
            }
        }
        for (k, a) in pairs {
            let (roots, image) = (roots.clone(), s.image.clone());
            let prepared = tokio::task::spawn_blocking(move || prepare_one(&roots, &k, a, &image)).await;
            match prepared {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Failure::CannotTest(e)),
                Err(e) => return Err(Failure::CannotTest(e.to_string())),
            }
        }
    }
    Ok(Done::Ok)
}

fn prepare_one(roots: &Roots, kernel_name: &str, arch: Arch, image_name: &str) -> Result<(), String> {
    let log = |m: &str| eprintln!("{m}");
    let chain = |e: &(dyn std::error::Error + 'static)| crate::errors::chain(e);
    let kd = kernel::find(&roots.kernels, kernel_name).map_err(|e| chain(&e))?;
    let ka = kd.resolve(arch, &log).map_err(|e| chain(&e))?;
    let id = image::find(&roots.images, image_name).map_err(|e| chain(&e))?;
    let b = image::build(&id, arch, &log).map_err(|e| chain(&e))?;
    image::boot_initramfs(&ka, &b).map_err(|e| chain(&e))?;
    image::modules_disk(&ka).map_err(|e| chain(&e))?;
    eprintln!(
        "prepared {kernel_name} on {arch}: {} + {}",
        ka.origin,
        b.rootfs.display()
    );
    Ok(())
}

pub fn oops_parse(file: &Path, json: bool, vmlinux: Option<&PathBuf>) -> Result<Done, Failure> {
    let unreadable = |e: std::io::Error| Failure::Usage(format!("cannot read {}: {e}", file.display()));
    let mut reports = parse_file(file).map_err(unreadable)?;
    if let Some(v) = vmlinux {
        let sym = crate::symbolize::Symbolizer::open(v).map_err(|e| Failure::Usage(crate::errors::chain(&e)))?;
        for r in &mut reports {
            sym.report(r);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports).unwrap_or_default());
    } else {
        reports.iter().for_each(print_report);
    }
    Ok(Done::Parsed { reports: reports.len() })
}

/// The reports in a log file, read in chunks through the detector so that memory is bounded by
/// the reports, not the file; a paste (decided on the same head as `parse_any`) is small and
/// read whole to be turned back into console lines.
fn parse_file(file: &Path) -> std::io::Result<Vec<repro_oops::Report>> {
    use std::io::Read;
    let mut f = std::fs::File::open(file)?;
    let mut head = Vec::new();
    Read::by_ref(&mut f)
        .take(repro_oops::PASTE_CHECK_BYTES as u64)
        .read_to_end(&mut head)?;
    if repro_oops::is_paste(&head) {
        f.read_to_end(&mut head)?;
        return Ok(repro_oops::parse_any(&head));
    }
    let mut d = repro_oops::Detector::new();
    let mut reports = d.feed(&head);
    drop(head);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reports.extend(d.feed(&buf[..n]));
    }
    reports.extend(d.finish());
    Ok(reports)
}

fn print_report(r: &repro_oops::Report) {
    let corrupted = if r.corrupted { " (corrupted)" } else { "" };
    println!("{}  [{}]{corrupted}", r.title, r.kind);
    if let Some(f) = r.faulting_frame.as_ref().filter(|f| !f.source.is_empty()) {
        println!("    fault at:");
        for l in crate::symbolize::describe(f) {
            println!("      {l}");
        }
    }
    for f in r.frames.iter().filter(|f| f.reliable).take(8) {
        println!(
            "    {}{}",
            f.function,
            f.module.as_deref().map(|m| format!(" [{m}]")).unwrap_or_default()
        );
        for l in crate::symbolize::describe(f) {
            println!("      {l}");
        }
    }
}
