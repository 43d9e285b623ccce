//! Against the archive's real listing, captured on 2026-12-01 with
//! `apt-cache search --names-only '^linux-(image|headers)-[0-9][^ ]*-cloud-(amd64|arm64)(-dbg)?$'`
//! and `apt-cache show --no-all-versions` of every image package in it.

use super::*;

fn archive() -> Vec<Package> {
    let names: Vec<&str> = include_str!("apt-cache-search.txt").lines().collect();
    parse_show(include_str!("apt-cache-show.txt"), &names)
}

fn pick(spec: &str, arch: Arch) -> Result<Package, NotFound> {
    let all = archive();
    select(&Spec::parse(spec).unwrap(), &all, arch).cloned()
}

#[test]
fn the_listing_gives_every_versioned_cloud_image_with_its_upstream_version() {
    let all = archive();
    // 41 image packages, less the two 6.12 metapackages.
    assert_eq!(all.len(), 39);
    let p = all
        .iter()
        .find(|p| p.package == "linux-image-6.1.0-50-cloud-amd64")
        .unwrap();
    assert_eq!((p.abi.as_str(), p.version.as_str()), ("6.1.0-50", "6.1.176-1"));
    assert_eq!(p.upstream, Upstream(6, 1, 176));
    assert_eq!(
        (p.name.as_str(), p.release.as_str()),
        ("debian:6.1.0-50", "6.1.0-50-cloud-amd64")
    );
    assert!(p.dbg && p.headers);
    assert_eq!(p.size, Some(26484304));
    let p = all
        .iter()
        .find(|p| p.package == "linux-image-6.1.0-48-cloud-arm64")
        .unwrap();
    assert!(!p.dbg && !p.headers, "the archive has neither for 6.1.0-48");
    let p = all
        .iter()
        .find(|p| p.package == "linux-image-6.12.107+deb12-cloud-arm64")
        .unwrap();
    assert_eq!((p.abi.as_str(), p.upstream), ("6.12.107+deb12", Upstream(6, 12, 107)));
    assert!(all.iter().all(|p| !p.package.starts_with("linux-image-6.12-cloud")));
}

#[test]
fn names_parse_into_what_they_ask_for() {
    assert_eq!(Spec::parse("latest"), Ok(Spec::Latest));
    assert_eq!(Spec::parse("6.12"), Ok(Spec::Series(6, 12)));
    assert_eq!(Spec::parse("6.1.180"), Ok(Spec::Upstream(Upstream(6, 1, 180))));
    let abi = |a: &str, arch| Ok(Spec::Abi { abi: a.into(), arch });
    assert_eq!(Spec::parse("6.1.0-50"), abi("6.1.0-50", None));
    assert_eq!(Spec::parse("6.12.107+deb12"), abi("6.12.107+deb12", None));
    assert_eq!(
        Spec::parse("6.1.0-50-cloud-arm64"),
        abi("6.1.0-50", Some(Arch::Aarch64))
    );
    for bad in [
        "",
        "6",
        "6.1.x",
        "6.1.0-",
        "6.1-50",
        "6.12.107+ubuntu",
        "newest",
        "6.1-cloud-amd64",
    ] {
        let e = Spec::parse(bad).unwrap_err();
        assert!(
            e.contains(&format!("`debian:{bad}`")) && e.contains("debian:6.1.0-50"),
            "{e}"
        );
    }
    assert_eq!(Spec::of_name("linux-6.1"), None);
    assert_eq!(Spec::of_name("debian:6.1").unwrap(), Ok(Spec::Series(6, 1)));
}

#[test]
fn a_release_string_pins_a_debian_abi_and_nothing_else_does() {
    let abi = |a: &str| {
        Some(Spec::Abi {
            abi: a.into(),
            arch: None,
        })
    };
    assert_eq!(Spec::of_release("6.1.0-50-cloud-amd64"), abi("6.1.0-50"));
    assert_eq!(Spec::of_release("6.1.0-50-amd64"), abi("6.1.0-50"));
    assert_eq!(Spec::of_release("6.12.107+deb12-cloud-arm64"), abi("6.12.107+deb12"));
    for other in [
        "4.19.90-2102.2.0.0062.oe1.aarch64",
        "5.4.0-100-generic",
        "6.1.0-rc3+",
        "6.1.192",
        "6.1.0",
    ] {
        assert_eq!(Spec::of_release(other), None, "{other}");
    }
}

#[test]
fn each_form_selects_the_newest_package_that_fits() {
    let name = |s: &str, a| pick(s, a).map(|p| p.package).unwrap();
    assert_eq!(name("6.1.0-50", Arch::X86_64), "linux-image-6.1.0-50-cloud-amd64");
    assert_eq!(name("6.1.0-50", Arch::Aarch64), "linux-image-6.1.0-50-cloud-arm64");
    // 6.1.192 is three ABIs (-55, -56, -57): the newest.
    assert_eq!(name("6.1.192", Arch::X86_64), "linux-image-6.1.0-57-cloud-amd64");
    assert_eq!(name("6.1.176", Arch::X86_64), "linux-image-6.1.0-50-cloud-amd64");
    assert_eq!(
        name("6.12.107", Arch::Aarch64),
        "linux-image-6.12.107+deb12-cloud-arm64"
    );
    assert_eq!(name("6.1", Arch::X86_64), "linux-image-6.1.0-57-cloud-amd64");
    assert_eq!(name("6.12", Arch::X86_64), "linux-image-6.12.117+deb12-cloud-amd64");
    assert_eq!(name("latest", Arch::Aarch64), "linux-image-6.12.117+deb12-cloud-arm64");
    // Older ABIs only some arches have.
    assert_eq!(name("6.1.164", Arch::Aarch64), "linux-image-6.1.0-44-cloud-arm64");
    assert!(pick("6.1.164", Arch::X86_64).is_err());
    // A release string's arch must be the one asked for.
    assert!(pick("6.1.0-50-cloud-arm64", Arch::X86_64).is_err());
}

#[test]
fn a_missing_kernel_names_the_closest_packages_the_archive_has() {
    let closest = |s: &str, a| {
        pick(s, a)
            .unwrap_err()
            .closest
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    // Between 6.1.177 (-51) and 6.1.180 (-52).
    assert_eq!(
        closest("6.1.179", Arch::X86_64),
        ["debian:6.1.0-52", "debian:6.1.0-51", "debian:6.1.0-50"]
    );
    assert_eq!(
        closest("6.1.0-44", Arch::X86_64),
        ["debian:6.1.0-47", "debian:6.1.0-48", "debian:6.1.0-49"]
    );
    assert_eq!(closest("6.12.103", Arch::X86_64)[0], "debian:6.12.101+deb12");
    // seed 000's openEuler 4.19: no 4.x at all; the oldest of the nearest series.
    let e = pick("4.19.90", Arch::X86_64).unwrap_err();
    assert_eq!(e.closest[0].name, "debian:6.1.0-47");
    let text = e.to_string();
    assert!(text.contains("no cloud kernel `debian:4.19.90` for x86_64"), "{text}");
    assert!(text.contains("debian:6.1.0-47 (6.1.170)"), "{text}");
    // An empty listing says what to do.
    let none = select(&Spec::Latest, &[], Arch::X86_64).unwrap_err().to_string();
    assert!(none.contains("apt-get update"), "{none}");
}

#[test]
fn kernel_names_are_definitions_or_well_formed_debian_names() {
    let defined = vec!["linux-6.1".to_string()];
    assert!(known_kernel("linux-6.1", &defined).is_ok());
    assert!(known_kernel("debian:6.1.0-50", &defined).is_ok());
    let e = known_kernel("linux-6.2", &defined).unwrap_err();
    assert!(
        e.contains("unknown kernel `linux-6.2`") && e.contains("linux-6.1") && e.contains("debian:"),
        "{e}"
    );
    assert!(known_kernel("debian:6.1.0-", &defined)
        .unwrap_err()
        .contains("is not a Debian kernel"));
}
