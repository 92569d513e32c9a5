//! The access log: one JSON object per line, written off the request path by a dedicated
//! thread through a bounded queue. A full queue drops the line and counts it
//! (`portcullis_access_log_dropped_total`) rather than slowing requests. A log file is reopened
//! when it is moved or removed (logrotate without `copytruncate` works).
//!
//! Lines never carry a token or a secret: the path is logged without its query string, and the
//! subject can be redacted (`access_log.redact_subject`).

use std::io::Write;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    File(String),
}

/// Access log settings (changing them needs a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSettings {
    pub target: AccessLogTarget,
    pub redact_subject: bool,
    pub buffer_lines: usize,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        AccessLogSettings {
            target: AccessLogTarget::Stdout,
            redact_subject: false,
            buffer_lines: 16_384,
        }
    }
}

/// The sending side, shared by every request.
pub struct AccessLog {
    sender: Option<SyncSender<String>>,
    pub redact_subject: bool,
}

impl AccessLog {
    /// Starts the writer thread (none when the log is off).
    pub fn start(settings: &AccessLogSettings) -> std::io::Result<AccessLog> {
        let sender = match &settings.target {
            AccessLogTarget::Off => None,
            target => {
                let (sender, receiver) = mpsc::sync_channel(settings.buffer_lines.max(1));
                let mut sink = Sink::open(target)?;
                std::thread::Builder::new()
                    .name("portcullis-access-log".into())
                    .spawn(move || sink.run(receiver))?;
                Some(sender)
            }
        };
        Ok(AccessLog {
            sender,
            redact_subject: settings.redact_subject,
        })
    }

    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Queues one line; drops it (and counts) when the writer is behind.
    pub fn write(&self, line: String) {
        if let Some(sender) = &self.sender {
            if let Err(TrySendError::Full(_)) = sender.try_send(line) {
                crate::metrics::metrics()
                    .access_log_dropped
                    .with_label_values(&[] as &[&str])
                    .inc();
            }
        }
    }
}

/// The writing side, on its own thread.
struct Sink {
    target: AccessLogTarget,
    writer: std::io::BufWriter<Box<dyn Write + Send>>,
    opened_inode: Option<u64>,
}

impl Sink {
    fn open(target: &AccessLogTarget) -> std::io::Result<Sink> {
        let (writer, inode): (Box<dyn Write + Send>, Option<u64>) = match target {
            AccessLogTarget::File(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                let inode = std::os::unix::fs::MetadataExt::ino(&file.metadata()?);
                (Box::new(file), Some(inode))
            }
            _ => (Box::new(std::io::stdout()), None),
        };
        Ok(Sink {
            target: target.clone(),
            writer: std::io::BufWriter::with_capacity(64 * 1024, writer),
            opened_inode: inode,
        })
    }

    fn run(&mut self, receiver: Receiver<String>) {
        loop {
            match receiver.recv_timeout(Duration::from_secs(1)) {
                Ok(line) => {
                    let _ = self.writer.write_all(line.as_bytes());
                    let _ = self.writer.write_all(b"\n");
                    // Write out when nothing else is waiting, so lines appear promptly.
                    if let Ok(line) = receiver.try_recv() {
                        let _ = self.writer.write_all(line.as_bytes());
                        let _ = self.writer.write_all(b"\n");
                        continue;
                    }
                    let _ = self.writer.flush();
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.writer.flush();
                    self.reopen_if_rotated();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.writer.flush();
                    return;
                }
            }
        }
    }

    fn reopen_if_rotated(&mut self) {
        let AccessLogTarget::File(path) = &self.target else {
            return;
        };
        let current = std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
        if current.ok() != self.opened_inode {
            if let Ok(reopened) = Sink::open(&self.target) {
                *self = reopened;
            }
        }
    }
}

/// RFC 3339 UTC timestamp with milliseconds, without a date-time crate.
pub fn rfc3339_now() -> String {
    rfc3339(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// A time since the Unix epoch as RFC 3339 UTC with milliseconds: `2026-11-29T04:07:07.473Z`.
fn rfc3339(now: Duration) -> String {
    let seconds = now.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    // Digit by digit rather than through `format!`, which cost a third of an access-log line.
    let mut text = String::with_capacity(24);
    let mut push = |value: u64, width: u32, then: char| {
        for position in (0..width).rev() {
            text.push(char::from(b'0' + (value / 10u64.pow(position) % 10) as u8));
        }
        text.push(then);
    };
    push(year.clamp(0, 9999) as u64, 4, '-');
    push(u64::from(month), 2, '-');
    push(u64::from(day), 2, 'T');
    push(rest / 3600, 2, ':');
    push(rest % 3600 / 60, 2, ':');
    push(rest % 60, 2, '.');
    push(u64::from(now.subsec_millis()), 3, 'Z');
    text
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
        assert_eq!(rfc3339_now().len(), 24);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Duration::new(1_795_925_441, 473_900_000)),
            "2026-11-29T04:10:41.473Z"
        );
        assert_eq!(
            rfc3339(Duration::new(951_868_799, 9_000_000)),
            "2000-02-29T23:59:59.009Z"
        );
        assert_eq!(
            rfc3339(Duration::new(253_402_300_799, 999_999_999)),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn file_sink_reopens_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let target = AccessLogTarget::File(path.display().to_string());
        let mut sink = Sink::open(&target).unwrap();
        sink.writer.write_all(b"one\n").unwrap();
        sink.writer.flush().unwrap();
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        sink.reopen_if_rotated();
        sink.writer.write_all(b"two\n").unwrap();
        sink.writer.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("access.log.1")).unwrap(),
            "one\n"
        );
    }
}
