//! The node_exporter textfile: written atomically at the end of a run, and read back for the
//! job's last success timestamp, which a failed run keeps.

use std::path::Path;

use super::exposition::LAST_SUCCESS;
use super::RunMeta;

/// Writes `body` to `path` atomically: a hidden temporary file in the same directory (not
/// ending in `.prom`, so the collector never reads it half-written), synced, then renamed.
pub fn write_textfile(path: &Path, body: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the metrics file path names no file"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = create_private(&tmp).or_else(|_| {
            // A leftover of a killed run, or something planted there: removed (a symlink
            // itself, never its target), then created afresh.
            std::fs::remove_file(&tmp)?;
            create_private(&tmp)
        })?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Creates `path` as a new file: never an existing one, never through a symlink (the textfile
/// directory is often shared with other writers).
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o644)
        .open(path)
}

/// The last success timestamp of this run's job recorded in an existing textfile, so a failed
/// run does not erase it.
pub fn last_success_in(path: &Path, meta: &RunMeta) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let prefix = format!("{LAST_SUCCESS}{{{}}} ", meta.labels());
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{render, test_meta as meta};
    use crate::report::Stats;

    #[test]
    fn textfile_is_replaced_atomically_and_keeps_last_success() {
        let dir = std::env::temp_dir().join(format!("p2m-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p2m.prom");
        let m = meta();
        let body = render(&Stats::default(), &m, None, Some(1234.5));
        write_textfile(&path, &body).unwrap();
        assert_eq!(last_success_in(&path, &m), Some(1234.5));
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("p2m.prom")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A symlink planted where the temporary file goes (the directory is often shared, e.g.
    /// node_exporter's textfile directory) is never followed: its target stays as it was.
    #[test]
    fn a_symlink_at_the_temporary_path_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("p2m-metrics-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        let tmp = dir.join(format!(".p2m.prom.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let path = dir.join("p2m.prom");
        write_textfile(&path, "m 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "m 1\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn last_success_is_the_own_jobs_only() {
        let dir = std::env::temp_dir().join(format!("p2m-metrics-own-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p2m.prom");
        let mut other = meta();
        other.job_id = "other".into();
        write_textfile(&path, &render(&Stats::default(), &other, None, Some(1.0))).unwrap();
        assert_eq!(last_success_in(&path, &meta()), None);
        assert_eq!(last_success_in(&dir.join("absent.prom"), &meta()), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
