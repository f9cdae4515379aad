//! Names the commit the binary was built from, for `pulsar2mysql --version`:
//! `P2M_GIT_COMMIT` from the environment (the Dockerfile's build argument, or anyone building
//! from an export), else `git` in a checkout, else the `.git-commit` file that `git archive`
//! fills in (`export-subst` in `.gitattributes`: the source tarball of scripts/release.sh),
//! else `unknown`. Never fails the build.
use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=P2M_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git-commit");
    let from_env = std::env::var("P2M_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let from_git = || {
        // Only this repository's own checkout: a source tree unpacked inside some other
        // repository must not take that repository's commit.
        let top = git(&["rev-parse", "--show-toplevel"])?;
        let here = std::env::var("CARGO_MANIFEST_DIR").ok()?;
        if Path::new(&top).canonicalize().ok()? != Path::new(&here).canonicalize().ok()? {
            return None;
        }
        // Rebuild when HEAD moves (a commit, a checkout): HEAD itself and the branch it names.
        for path in ["HEAD", "packed-refs"] {
            if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        git(&["rev-parse", "--short=12", "HEAD"])
    };
    let from_archive = || {
        let text = std::fs::read_to_string(".git-commit").ok()?;
        let text = text.trim();
        // The full hash, shortened like the git path's.
        (!text.is_empty() && !text.contains('$')).then(|| text.chars().take(12).collect())
    };
    let commit = from_env
        .or_else(from_git)
        .or_else(from_archive)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=P2M_GIT_COMMIT={commit}");
}
