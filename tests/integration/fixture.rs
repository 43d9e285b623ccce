//! A fluent fixture: a temporary project root with the repo's kernels/ and images/, extra
//! files, and an expectation on the `repro` binary's output and exit code.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    stdout_has: Vec<String>,
    status: i32,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies the files (not subdirectories) of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

impl Test {
    /// A root with the repo's kernel and image definitions and no scenarios.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("kernels"), &dir.path().join("kernels"));
        copy_dir(&repo().join("images"), &dir.path().join("images"));
        std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
        Test {
            dir,
            args: Vec::new(),
            stdout: None,
            stderr: None,
            stdout_has: Vec::new(),
            status: 0,
        }
    }

    /// Also copies the repo's scenarios.
    pub fn with_repo_scenarios(self) -> Self {
        copy_dir(&repo().join("scenarios"), &self.dir.path().join("scenarios"));
        // Module sources the scenarios name.
        copy_dir(
            &repo().join("tests/modules/crashmod"),
            &self.dir.path().join("tests/modules/crashmod"),
        );
        self
    }

    pub fn file(self, rel: &str, content: &str) -> Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn args(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }

    pub fn stdout(mut self, s: &str) -> Self {
        self.stdout = Some(s.to_string());
        self
    }

    pub fn stdout_contains(mut self, s: &str) -> Self {
        self.stdout_has.push(s.to_string());
        self
    }

    pub fn stderr(mut self, s: &str) -> Self {
        self.stderr = Some(s.to_string());
        self
    }

    pub fn status(mut self, code: i32) -> Self {
        self.status = code;
        self
    }

    /// Runs `repro --root <tmp> ARGS` in the temporary root and checks every expectation.
    pub fn run(self) -> (String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_repro"))
            .arg("--root")
            .arg(self.dir.path())
            .args(&self.args)
            .current_dir(self.dir.path())
            .env("REPRO_CACHE", self.dir.path().join("cache"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(self.status),
            "exit code of repro {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            self.args
        );
        if let Some(want) = &self.stdout {
            assert_eq!(&stdout, want, "stdout of repro {:?}", self.args);
        }
        for want in &self.stdout_has {
            assert!(
                stdout.contains(want.as_str()),
                "stdout of repro {:?} lacks {want:?}:\n{stdout}",
                self.args
            );
        }
        if let Some(want) = &self.stderr {
            assert_eq!(&stderr, want, "stderr of repro {:?}", self.args);
        }
        (stdout, stderr)
    }
}
