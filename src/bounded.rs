//! Reading what a command prints without letting it decide how much memory
//! firedrill uses: everything is read (a writer blocked on a full pipe
//! never finishes), only a bounded tail is kept.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads `reader` to its end and returns its last `limit` bytes (cut on a
/// character boundary when decoded lossily by the caller), and how many
/// bytes before them were dropped. `watch`, if any, sees every byte.
pub async fn read_tail<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
    mut watch: Option<&mut crate::watch::Watch>,
) -> (Vec<u8>, u64) {
    let mut kept: Vec<u8> = Vec::new();
    let mut total = 0u64;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n as u64;
                if let Some(watch) = watch.as_deref_mut() {
                    watch.feed(&chunk[..n]);
                }
                kept.extend_from_slice(&chunk[..n]);
                // Drop the oldest bytes once the buffer is twice the limit,
                // so dropping costs O(1) per byte read.
                if kept.len() > 2 * limit {
                    kept.drain(..kept.len() - limit);
                }
            }
        }
    }
    if kept.len() > limit {
        kept.drain(..kept.len() - limit);
    }
    let dropped = total - kept.len() as u64;
    (kept, dropped)
}

/// The bytes a capped log's note says were dropped in `text` (0 if none).
pub fn dropped_in(text: &str) -> u64 {
    notes(text).map(|(_, count)| count).sum()
}

/// What a capped log holds of the output, without its notes: the pieces
/// between the places where output was dropped.
pub fn kept_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut from = 0;
    for (range, _) in notes(text) {
        pieces.push(&text[from..range.start]);
        from = range.end;
    }
    pieces.push(&text[from..]);
    pieces
}

/// Each note of a capped log in `text` (see [`dropped_note`]): where it is,
/// and how many bytes it says were dropped there.
fn notes(text: &str) -> impl Iterator<Item = (std::ops::Range<usize>, u64)> + '_ {
    text.match_indices("\n[firedrill: ")
        .filter_map(|(at, note)| {
            let rest = &text[at + note.len()..];
            let (count, after) = rest.split_once(' ')?;
            let count = count.parse::<u64>().ok()?;
            if !after.starts_with("bytes of output dropped here") {
                return None;
            }
            let end = rest
                .find("]\n")
                .map_or(text.len(), |close| at + note.len() + close + 2);
            Some((at..end, count))
        })
}

/// The largest drill or runbook file firedrill reads.
pub const MAX_INPUT_FILE: u64 = 16 * 1024 * 1024;

/// Reads a file the user named, if it is a regular file of at most
/// `limit` bytes: a FIFO would block forever, `/dev/zero` never ends. The
/// file is opened without blocking and judged by the handle, so what is
/// read is what was checked.
pub fn read_regular(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a directory, FIFO, socket or device is never read)",
        ));
    }
    if meta.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} bytes: larger than the {limit} bytes firedrill reads",
                meta.len()
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("grew past the {limit} bytes firedrill reads"),
        ));
    }
    Ok(bytes)
}

/// The default cap of a step's log (`logs/<step>.log`): 8 MiB.
pub const DEFAULT_LOG_LIMIT: u64 = 8 * 1024 * 1024;

/// The cap of each step log: `FIREDRILL_LOG_LIMIT` in the runner's
/// environment (bytes, or with a `K`, `M` or `G` suffix), else
/// [`DEFAULT_LOG_LIMIT`]; at least 4 KiB.
pub fn log_limit() -> u64 {
    std::env::var("FIREDRILL_LOG_LIMIT")
        .ok()
        .and_then(|text| parse_size(&text))
        .unwrap_or(DEFAULT_LOG_LIMIT)
        .max(4096)
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// Caps a log at `limit` bytes in place: its first and last halves stay,
/// with a line in between saying how many bytes were dropped. In place,
/// so that a process still appending to it (`O_APPEND`) goes on writing at
/// its new end.
pub fn cap_log(path: &std::path::Path, limit: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = file.metadata()?.len();
    if len <= limit {
        return Ok(());
    }
    let keep = limit / 2;
    let mut tail = Vec::with_capacity(keep as usize);
    file.seek(SeekFrom::Start(len - keep))?;
    Read::by_ref(&mut file).take(keep).read_to_end(&mut tail)?;
    let dropped = len - keep - tail.len() as u64;
    let marker = dropped_note(dropped, keep);
    file.seek(SeekFrom::Start(keep))?;
    file.write_all(marker.as_bytes())?;
    file.write_all(&tail)?;
    file.set_len(keep + marker.len() as u64 + tail.len() as u64)?;
    Ok(())
}

/// The line a capped log holds where output was dropped.
fn dropped_note(dropped: u64, keep: u64) -> String {
    format!(
        "\n[firedrill: {dropped} bytes of output dropped here; each log keeps its first and last {keep} bytes (FIREDRILL_LOG_LIMIT)]\n"
    )
}

/// Where a command's stdout and stderr go while it runs: a pipe whose
/// reader writes into a log file, never more than its cap (plus the line
/// saying what was dropped). The pipe is always drained, so the command
/// never blocks on it; the head is written as it comes, a bounded tail is
/// kept in memory and appended when the command ends ([`CappedLog::sync`])
/// and when its output ends (whatever it left in the background gone).
pub struct CappedLog {
    writer: Option<std::os::fd::OwnedFd>,
    /// What the watch given to [`CappedLog::open_watched`] saw: set at the
    /// first [`CappedLog::sync`], or at the end of the output before it.
    seen: std::sync::Arc<std::sync::Mutex<Option<crate::watch::Seen>>>,
    /// The pipe's read end, which the pump owns (open while it runs).
    reader: std::os::fd::RawFd,
    sync: tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<()>>,
    /// The pump; `None` once it is known to have ended.
    done: Option<tokio::task::JoinHandle<()>>,
}

impl CappedLog {
    /// Opens (or appends to) `path`, capped at `limit` bytes: what the file
    /// holds already counts towards the head.
    pub fn open(path: &std::path::Path, limit: u64) -> std::io::Result<CappedLog> {
        CappedLog::open_watched(path, limit, None)
    }

    /// [`CappedLog::open`], with `watch` seeing every byte that goes through
    /// the pipe, kept or not, until the command ends ([`CappedLog::seen`]).
    pub fn open_watched(
        path: &std::path::Path,
        limit: u64,
        watch: Option<crate::watch::Watch>,
    ) -> std::io::Result<CappedLog> {
        let (sender, receiver) = tokio::net::unix::pipe::pipe()?;
        let writer = sender.into_blocking_fd()?;
        CappedLog::pumping(path, limit, receiver, Some(writer), watch)
    }

    /// Pumps `receiver` into `path` (appended to), capped at `limit`.
    fn pumping(
        path: &std::path::Path,
        limit: u64,
        receiver: tokio::net::unix::pipe::Receiver,
        writer: Option<std::os::fd::OwnedFd>,
        watch: Option<crate::watch::Watch>,
    ) -> std::io::Result<CappedLog> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        let start = file.metadata()?.len();
        let reader = receiver.as_raw_fd();
        let (sync, requests) = tokio::sync::mpsc::unbounded_channel();
        let seen = std::sync::Arc::default();
        let mut sink = Sink::new(file, start, limit);
        sink.watch = watch.map(|watch| (watch, std::sync::Arc::clone(&seen)));
        let done = tokio::spawn(pump(receiver, requests, sink));
        Ok(CappedLog {
            writer,
            seen,
            reader,
            sync,
            done: Some(done),
        })
    }

    /// Makes the pipe outlive firedrill: `command`'s process keeps a copy
    /// of its read end (an fd of 10 or more it never uses), so a process
    /// still writing after the runner died is never killed by `SIGPIPE`; it
    /// writes into the pipe's buffer (enlarged to 1 MiB where allowed) and
    /// waits once that is full, until `resume` reads the pipe again
    /// ([`CappedLog::attach`]).
    pub fn outlive_runner(&self, command: &mut tokio::process::Command) {
        let reader = self.reader;
        // SAFETY: F_SETPIPE_SZ on the runner's own pipe; in the child only
        // fcntl(2), which is async-signal-safe.
        unsafe {
            libc::fcntl(reader, libc::F_SETPIPE_SZ, 1 << 20);
            command.pre_exec(move || {
                // A duplicate without close-on-exec; a failure only loses
                // the protection.
                libc::fcntl(reader, libc::F_DUPFD, 10);
                Ok(())
            });
        }
    }

    /// On `resume`: reads the log pipe of a process a dead runner started
    /// with [`CappedLog::outlive_runner`] again, from its stdout
    /// (`/proc/PID/fd/1`), into `path`, capped at `limit`. `None` when its
    /// stdout is not a pipe.
    pub fn attach(
        path: &std::path::Path,
        limit: u64,
        pid: u32,
    ) -> std::io::Result<Option<CappedLog>> {
        use std::os::unix::fs::OpenOptionsExt;
        let stdout = std::path::PathBuf::from(format!("/proc/{pid}/fd/1"));
        if !std::fs::read_link(&stdout)?
            .to_string_lossy()
            .starts_with("pipe:")
        {
            return Ok(None);
        }
        let pipe = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&stdout)?;
        let receiver = tokio::net::unix::pipe::Receiver::from_file(pipe)?;
        CappedLog::pumping(path, limit, receiver, None, None).map(Some)
    }

    /// A write end for the child's stdout or stderr. Call [`CappedLog::close`]
    /// (or drop this) once the child is spawned, so that only the child
    /// holds the pipe open.
    pub fn stdio(&self) -> std::io::Result<std::process::Stdio> {
        match &self.writer {
            Some(fd) => Ok(std::process::Stdio::from(fd.try_clone()?)),
            None => Err(std::io::Error::other("the log's pipe is closed")),
        }
    }

    /// Drops firedrill's own write end: the reader sees the end of the
    /// output when the child (and whatever inherited the pipe) has gone.
    pub fn close(&mut self) {
        self.writer = None;
    }

    /// Waits until everything written into the pipe so far is in the file,
    /// the tail included, and whether it is. Output that keeps coming (a
    /// process the command left in the background) goes on being written,
    /// capped, after this. Never waits for the pipe, only for the pump to
    /// take its turn, and not beyond `patience` (a starved runtime): false
    /// then, and the file may lack the last output.
    pub async fn sync(&mut self, patience: std::time::Duration) -> bool {
        let (ack, acked) = tokio::sync::oneshot::channel();
        let Some(done) = self.done.as_mut() else {
            return true;
        };
        if self.sync.send(ack).is_err() {
            // The pump has ended: the file is final.
            return true;
        }
        // The pump's end answers too: a request sent as it ends (the
        // command's output ends as the command does) can be accepted by the
        // channel after the pump last looked, and then is never answered
        // nor dropped while this log lives.
        let answered = tokio::time::timeout(patience, async {
            tokio::select! {
                _ = acked => false,
                _ = done => true,
            }
        })
        .await;
        match answered {
            Ok(ended) => {
                if ended {
                    self.done = None;
                }
                true
            }
            Err(_) => false,
        }
    }

    /// What the watch saw of the output up to the first [`CappedLog::sync`]
    /// (what the command printed before it ended; not what it left in the
    /// background prints later). `None` without a watch, or before a sync.
    pub fn seen(&self) -> Option<crate::watch::Seen> {
        self.seen.lock().ok().and_then(|seen| seen.clone())
    }

    /// Waits for the end of the output (every writer gone), the file final.
    pub async fn finish(mut self) {
        self.close();
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

/// The file side of a [`CappedLog`].
struct Sink {
    file: std::fs::File,
    /// How many more bytes the head takes.
    head_room: u64,
    keep: u64,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
    /// The tail has changed since it was last written.
    stale: bool,
    /// Sees every byte until the first sync, then says what it saw.
    watch: Option<(
        crate::watch::Watch,
        std::sync::Arc<std::sync::Mutex<Option<crate::watch::Seen>>>,
    )>,
}

impl Sink {
    fn new(file: std::fs::File, start: u64, limit: u64) -> Sink {
        let keep = limit / 2;
        Sink {
            file,
            head_room: (limit - keep).saturating_sub(start),
            keep,
            tail: std::collections::VecDeque::new(),
            dropped: 0,
            stale: false,
            watch: None,
        }
    }

    fn take(&mut self, mut bytes: &[u8]) {
        use std::io::Write;
        if let Some((watch, _)) = &mut self.watch {
            watch.feed(bytes);
        }
        if self.head_room > 0 {
            let n = bytes.len().min(self.head_room as usize);
            let _ = self.file.write_all(&bytes[..n]);
            self.head_room -= n as u64;
            bytes = &bytes[n..];
        }
        if bytes.is_empty() {
            return;
        }
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(self.keep as usize);
        if over > 0 {
            self.tail.drain(..over);
            self.dropped += over as u64;
        }
        self.stale = true;
    }

    /// Says what the watch saw, and stops watching: the command has ended,
    /// what comes later is not its output.
    fn report_seen(&mut self) {
        if let Some((watch, slot)) = self.watch.take()
            && let Ok(mut slot) = slot.lock()
        {
            *slot = Some(watch.seen());
        }
    }

    /// Appends the note and the tail kept so far, so the file reads head,
    /// note, tail. Appended, never rewritten: other writers of the same log
    /// (the next runbook step) are never overwritten.
    fn flush(&mut self) {
        use std::io::Write;
        if !self.stale {
            return;
        }
        self.stale = false;
        let mut bytes = Vec::with_capacity(self.tail.len() + 200);
        if self.dropped > 0 {
            bytes.extend_from_slice(dropped_note(self.dropped, self.keep).as_bytes());
        }
        bytes.extend(self.tail.drain(..));
        self.dropped = 0;
        let _ = self.file.write_all(&bytes);
    }
}

/// What the pipe holds now is all the command wrote so far: reads it (as
/// much as `FIONREAD` counts, so output that keeps coming cannot keep this
/// reading) with plain non-blocking reads, never waiting. Waiting could last
/// for ever: every process the command started holds the pipe's read end
/// ([`CappedLog::outlive_runner`]) and may have taken the counted bytes,
/// while a process it left in the background keeps the pipe open without
/// writing. Whether the output ended (every writer gone).
fn drain_now(
    receiver: &tokio::net::unix::pipe::Receiver,
    chunk: &mut [u8],
    sink: &mut Sink,
) -> bool {
    use std::os::fd::AsRawFd;
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer given.
    let _ = unsafe { libc::ioctl(receiver.as_raw_fd(), libc::FIONREAD, &mut pending) };
    let mut pending = pending.max(0) as usize;
    while pending > 0 {
        // Not `try_read`: tokio answers that from the readiness it last
        // saw, which may not know of bytes that are there.
        let want = pending.min(chunk.len());
        match nix::unistd::read(receiver, &mut chunk[..want]) {
            Ok(0) => return true,
            Ok(n) => {
                sink.take(&chunk[..n]);
                pending = pending.saturating_sub(n);
            }
            Err(nix::errno::Errno::EINTR) => {}
            // `EAGAIN`: another reader took what was counted.
            Err(_) => break,
        }
    }
    false
}

async fn pump(
    receiver: tokio::net::unix::pipe::Receiver,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<tokio::sync::oneshot::Sender<()>>,
    mut sink: Sink,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            Some(ack) = requests.recv() => {
                let ended = drain_now(&receiver, &mut chunk, &mut sink);
                sink.flush();
                sink.report_seen();
                let _ = ack.send(());
                if ended {
                    break;
                }
            }
            ready = receiver.readable() => {
                if ready.is_err() {
                    break;
                }
                match receiver.try_read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => sink.take(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
        }
    }
    sink.flush();
    sink.report_seen();
    // Answer whoever waits for a sync: the output has ended.
    requests.close();
    while let Ok(ack) = requests.try_recv() {
        let _ = ack.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_tail_of_what_is_longer_than_the_limit() {
        let text: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let (tail, dropped) = read_tail(&mut text.as_slice(), 1000, None).await;
        assert_eq!(tail, text[text.len() - 1000..]);
        assert_eq!(dropped, 999_000);
        let (short, dropped) = read_tail(&mut &b"short"[..], 1000, None).await;
        assert_eq!(short, b"short");
        assert_eq!(dropped, 0);
        assert_eq!(dropped_in(&format!("a{}b", dropped_note(1234, 10))), 1234);
        assert_eq!(dropped_in("[firedrill: 12 bytes] nothing"), 0);
        let capped = format!("head{}tail", dropped_note(1234, 10));
        assert_eq!(kept_pieces(&capped), ["head", "tail"]);
        assert_eq!(kept_pieces("all of it"), ["all of it"]);
    }

    #[test]
    fn a_log_keeps_its_head_and_tail_and_says_what_was_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        let text: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&log, &text).unwrap();
        cap_log(&log, 10_000).unwrap();
        let capped = std::fs::read(&log).unwrap();
        assert!(capped.len() < 10_200, "{}", capped.len());
        assert!(capped.starts_with(&text[..5000]));
        assert!(capped.ends_with(&text[text.len() - 5000..]));
        assert!(String::from_utf8_lossy(&capped).contains("90000 bytes of output dropped"));
        cap_log(&log, 1_000_000).unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), capped);
    }

    /// Every process a command starts holds the log pipe's read end
    /// ([`CappedLog::outlive_runner`]), so it may read the pipe too: the
    /// bytes the runner counted in it can be gone when it reads them. The
    /// runner must not wait for them while a writer (a process the command
    /// left in the background) lives on without writing.
    #[tokio::test(flavor = "current_thread")]
    async fn sync_returns_when_another_reader_took_the_bytes() {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let mut log = CappedLog::open(&dir.path().join("step.log"), 1 << 20).unwrap();
        let mut writer = std::fs::File::from(log.writer.as_ref().unwrap().try_clone().unwrap());
        // SAFETY: borrows the pipe's read end, which the pump keeps open.
        let reader = unsafe { std::os::fd::BorrowedFd::borrow_raw(log.reader) };
        let mut thief = std::fs::File::from(reader.try_clone_to_owned().unwrap());
        let (steal, stolen) = tokio::sync::oneshot::channel::<()>();
        let thief = tokio::spawn(async move {
            let _ = stolen.await;
            let mut bytes = [0u8; 64];
            thief.read(&mut bytes).unwrap_or(0)
        });
        // The pump waits for output, the other reader for its turn.
        tokio::task::yield_now().await;
        writer.write_all(b"taken\n").unwrap();
        // The sync is asked for first, then the other reader runs: on one
        // thread, it takes the bytes between the runner counting and
        // reading them.
        let synced = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            tokio::join!(log.sync(std::time::Duration::from_secs(600)), async {
                let _ = steal.send(());
            })
        })
        .await;
        assert!(synced.is_ok(), "sync waits for bytes another reader took");
        let _ = thief.await;
        drop(writer);
        log.finish().await;
    }

    /// A sync asked for as the output ends (the command's output ends as
    /// the command does) can be taken in by the request channel after the
    /// pump last looked at it: tokio's `send` says Ok, yet the request is
    /// never answered, nor dropped while the log lives. The pump's end
    /// answers it. Here the pump has ended with the request unread.
    #[tokio::test]
    async fn sync_returns_once_the_pump_ended_without_answering() {
        let (sync, unread) = tokio::sync::mpsc::unbounded_channel();
        let mut log = CappedLog {
            writer: None,
            seen: std::sync::Arc::default(),
            reader: -1,
            sync,
            done: Some(tokio::spawn(async {})),
        };
        let patience = std::time::Duration::from_secs(600);
        let synced = tokio::time::timeout(std::time::Duration::from_secs(60), log.sync(patience));
        assert_eq!(
            synced.await,
            Ok(true),
            "sync waits for an answer that never comes"
        );
        // The pump is known to have ended: no second wait for it.
        assert!(log.sync(patience).await);
        drop(unread);
        log.finish().await;
    }

    #[test]
    fn sizes_take_a_unit() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("8M"), Some(8 << 20));
        assert_eq!(parse_size("1x"), None);
    }
}
