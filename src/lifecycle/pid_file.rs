//! The pid file: written at start so that `portcullis reload` (and systemd's `ExecReload`) can
//! find the running instance, and read by `portcullis reload` to send it SIGHUP.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;

/// Why `portcullis reload` could not signal the instance.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("cannot read the pid file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("the pid file {path} does not hold a process id")]
    NotAPid { path: String },
    #[error("no running instance with pid {pid} (from {path}): {source}")]
    NoProcess {
        pid: i32,
        path: String,
        source: nix::Error,
    },
}

/// Writes this process's id; a failure is logged, not fatal.
pub fn write(path: &str) {
    let path = Path::new(path);
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        tracing::warn!(pid_file = %path.display(), error = %e, "cannot write the pid file; `portcullis reload` will not find this instance");
    }
}

/// Sends SIGHUP to the instance named by the pid file; returns its pid.
pub fn signal_reload(path: &str) -> Result<i32, SignalError> {
    let text = std::fs::read_to_string(path).map_err(|source| SignalError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| SignalError::NotAPid {
            path: path.to_owned(),
        })?;
    kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|source| SignalError::NoProcess {
        pid,
        path: path.to_owned(),
        source,
    })?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_file_without_a_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pid");
        for junk in ["", "abc", "0", "-1"] {
            std::fs::write(&path, junk).unwrap();
            let error = signal_reload(path.to_str().unwrap()).unwrap_err();
            assert!(
                matches!(error, SignalError::NotAPid { .. }),
                "{junk}: {error}"
            );
        }
        let missing = dir.path().join("missing.pid");
        assert!(matches!(
            signal_reload(missing.to_str().unwrap()),
            Err(SignalError::Unreadable { .. })
        ));
    }
}
