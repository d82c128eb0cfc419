//! Request bodies read with a bound, before and after gzip, so neither a huge
//! upload nor a small gzip bomb can take the receiver's memory.

use axum::body::{Body, Bytes, HttpBody};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::pin::Pin;
use std::time::Duration;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body larger than this receiver accepts ({limit} bytes{})", if *.decompressed { " after gzip decompression" } else { "" })]
    TooLarge { limit: usize, decompressed: bool },
    #[error("reading the request body failed: {0}")]
    Read(axum::Error),
    #[error("body is not valid gzip: {0}")]
    BadGzip(std::io::Error),
    #[error("unsupported Content-Encoding {0:?} (gzip or none)")]
    UnsupportedEncoding(String),
    #[error("the body did not arrive within {} (--body-timeout)", humantime::format_duration(*.after))]
    TimedOut { after: Duration },
}

/// How long a refused body is still read (and dropped) so the client sees the
/// 413 instead of a reset connection.
const DRAIN_FOR: Duration = Duration::from_secs(10);

/// Reads a whole body of at most `limit` bytes.
pub async fn read_limited(mut body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let hint = usize::try_from(body.size_hint().lower())
        .unwrap_or(limit)
        .min(limit);
    let mut out = Vec::with_capacity(hint);
    while let Some(frame) = next_data(&mut body).await {
        let data = frame.map_err(BodyError::Read)?;
        if out.len() + data.len() > limit {
            drain(body, limit).await;
            return Err(BodyError::TooLarge {
                limit,
                decompressed: false,
            });
        }
        out.extend_from_slice(&data);
    }
    Ok(out)
}

/// [`read_limited`], with the whole body due within `timeout` so a client
/// that stalls or drips its body cannot hold the connection.
pub async fn read_within(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, BodyError> {
    tokio::time::timeout(timeout, read_limited(body, limit))
        .await
        .map_err(|_| BodyError::TimedOut { after: timeout })?
}

/// Decodes a body per its `Content-Encoding` (none, `identity` or `gzip`),
/// refusing output above `limit` bytes.
pub fn decode(encoding: Option<&str>, bytes: Vec<u8>, limit: usize) -> Result<Vec<u8>, BodyError> {
    match encoding.map(str::trim) {
        None | Some("") => Ok(bytes),
        Some(e) if e.eq_ignore_ascii_case("identity") => Ok(bytes),
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => {
            gunzip_limited(&bytes, limit)
        }
        Some(other) => Err(BodyError::UnsupportedEncoding(other.to_string())),
    }
}

/// Decompresses gzip, stopping one byte past `limit`.
pub fn gunzip_limited(compressed: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(compressed)
        .take(bound)
        .read_to_end(&mut out)
        .map_err(BodyError::BadGzip)?;
    if out.len() > limit {
        return Err(BodyError::TooLarge {
            limit,
            decompressed: true,
        });
    }
    Ok(out)
}

async fn next_data(body: &mut Body) -> Option<Result<Bytes, axum::Error>> {
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
        match frame {
            Err(error) => return Some(Err(error)),
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
                // Trailers carry nothing for us.
            }
        }
    }
}

async fn drain(mut body: Body, limit: usize) {
    let mut left = limit;
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while let Some(Ok(data)) = next_data(&mut body).await {
            left = left.saturating_sub(data.len());
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).expect("should succeed");
        encoder.finish().expect("should succeed")
    }

    #[test]
    fn gunzip_is_bounded_after_decompression() {
        let bomb = gzip(&vec![b'a'; 1_000_000]);
        assert!(bomb.len() < 10_000);
        assert!(matches!(
            gunzip_limited(&bomb, 999_999),
            Err(BodyError::TooLarge {
                decompressed: true,
                ..
            })
        ));
        assert_eq!(
            gunzip_limited(&bomb, 1_000_000)
                .expect("should succeed")
                .len(),
            1_000_000
        );
    }

    #[test]
    fn decode_by_content_encoding() {
        assert_eq!(
            decode(None, b"{}".to_vec(), 10).expect("should succeed"),
            b"{}"
        );
        assert_eq!(
            decode(Some("GZIP"), gzip(b"{}"), 10).expect("should succeed"),
            b"{}"
        );
        assert!(matches!(
            decode(Some("br"), vec![], 10),
            Err(BodyError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            decode(Some("gzip"), b"{}".to_vec(), 10),
            Err(BodyError::BadGzip(_))
        ));
    }

    #[tokio::test]
    async fn read_within_gives_up_on_a_stalled_body() {
        /// Sends its first bytes, then nothing more, ever.
        struct Stalled(Option<Bytes>);
        impl HttpBody for Stalled {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>>
            {
                match self.0.take() {
                    Some(data) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(data)))),
                    None => std::task::Poll::Pending,
                }
            }
        }
        let body = Body::new(Stalled(Some(Bytes::from_static(b"{\"id\":"))));
        let read = read_within(body, 100, Duration::from_millis(50)).await;
        assert!(matches!(read, Err(BodyError::TimedOut { .. })), "{read:?}");
        let whole = read_within(Body::from("{}"), 100, Duration::from_secs(5)).await;
        assert_eq!(whole.expect("a whole body in time"), b"{}");
    }

    #[tokio::test]
    async fn read_limited_refuses_long_bodies() {
        assert_eq!(
            read_limited(Body::from("12345"), 5)
                .await
                .expect("should succeed"),
            b"12345"
        );
        assert!(matches!(
            read_limited(Body::from("123456"), 5).await,
            Err(BodyError::TooLarge {
                decompressed: false,
                ..
            })
        ));
    }
}
