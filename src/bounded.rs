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
