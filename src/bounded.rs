//! Reading what a command prints without letting it decide how much memory
//! firedrill uses: everything is read (a writer blocked on a full pipe
//! never finishes), only a bounded tail is kept.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads `reader` to its end and returns its last `limit` bytes (cut on a
/// character boundary when decoded lossily by the caller).
pub async fn read_tail<R: AsyncRead + Unpin>(reader: &mut R, limit: usize) -> Vec<u8> {
    let mut kept: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
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
    kept
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_tail_of_what_is_longer_than_the_limit() {
        let text: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let tail = read_tail(&mut text.as_slice(), 1000).await;
        assert_eq!(tail, text[text.len() - 1000..]);
        let short = read_tail(&mut &b"short"[..], 1000).await;
        assert_eq!(short, b"short");
    }
}
