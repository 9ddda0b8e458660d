//! The writer between hyper and the TLS stream: it buffers what hyper
//! writes until a flush, so that a response's HEADERS and DATA frames
//! leave together, and on HTTP/2 it hands the TLS stream one write per
//! finished response, so that each TLS record ends where a response does.
//!
//! Why record boundaries matter: dnsperf's DoH client (nghttp2 over
//! OpenSSL, at least up to 2.14) takes one TLS record per read and can
//! hold one answer at a time. When a record carries the DATA frames of two
//! answers it pauses nghttp2 on the second, loses that chunk, reports an
//! empty message as "try again" and then waits on a socket that has
//! nothing more to say, with the rest of the record still in its buffer:
//! every query outstanding on that connection is lost. hyper's HTTP/2
//! server writes the HEADERS of every response that is ready, then their
//! DATA frames, all in one write; cut at each frame that ends a stream,
//! each record holds at most one answer, as a server that answers one
//! request at a time (Unbound) sends them. Other clients do not care
//! where records end.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before a write waits for the TLS stream to take some.
const HIGH_WATER: usize = 64 * 1024;
/// HTTP/2 frame header: length (24 bits), type, flags, stream ID.
const FRAME_HEADER: usize = 9;
const TYPE_DATA: u8 = 0;
const TYPE_HEADERS: u8 = 1;
const FLAG_END_STREAM: u8 = 0x1;

/// Buffers writes to `inner` until a flush; with [`AnswerRecords::h2`],
/// writes each finished HTTP/2 response to `inner` on its own.
pub struct AnswerRecords<T> {
    inner: T,
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`.
    base: u64,
    /// Stream offsets just past each frame that ends a stream, ascending.
    cuts: VecDeque<u64>,
    /// `None` on HTTP/1.1: nothing to parse, one write per flush.
    frames: Option<FrameScan>,
}

/// Where the outgoing bytes are in the HTTP/2 frame sequence. The server
/// writes no connection preface of its own: its first byte starts a frame.
#[derive(Default)]
struct FrameScan {
    header: [u8; FRAME_HEADER],
    header_len: usize,
    payload_left: usize,
    ends_stream: bool,
}

impl<T> AnswerRecords<T> {
    /// HTTP/1.1 (or undetermined): buffered, flushed whole.
    pub fn http1(inner: T) -> Self {
        Self::new(inner, None)
    }

    /// HTTP/2 (ALPN `h2`): one TLS write per finished response.
    pub fn h2(inner: T) -> Self {
        Self::new(inner, Some(FrameScan::default()))
    }

    fn new(inner: T, frames: Option<FrameScan>) -> Self {
        AnswerRecords {
            inner,
            pending: Vec::with_capacity(16 * 1024),
            base: 0,
            cuts: VecDeque::new(),
            frames,
        }
    }

    /// Appends `buf` to what is pending and notes where streams end in it.
    fn push(&mut self, buf: &[u8]) {
        let start = self.base + self.pending.len() as u64;
        self.pending.extend_from_slice(buf);
        let Some(scan) = self.frames.as_mut() else {
            return;
        };
        let mut at = 0;
        while at < buf.len() {
            if scan.header_len < FRAME_HEADER {
                let take = (FRAME_HEADER - scan.header_len).min(buf.len() - at);
                scan.header[scan.header_len..scan.header_len + take]
                    .copy_from_slice(&buf[at..at + take]);
                scan.header_len += take;
                at += take;
                if scan.header_len < FRAME_HEADER {
                    break;
                }
                let h = scan.header;
                scan.payload_left =
                    (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                scan.ends_stream =
                    matches!(h[3], TYPE_DATA | TYPE_HEADERS) && h[4] & FLAG_END_STREAM != 0;
            }
            let take = scan.payload_left.min(buf.len() - at);
            scan.payload_left -= take;
            at += take;
            if scan.payload_left == 0 {
                if scan.ends_stream {
                    self.cuts.push_back(start + at as u64);
                }
                scan.header_len = 0;
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AnswerRecords<T> {
    /// Writes everything pending to `inner`, one write per finished
    /// response (the tail after the last one in a write of its own).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let end = self
                .cuts
                .front()
                .map_or(self.pending.len(), |&c| (c - self.base) as usize);
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[..end]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
            self.base += n as u64;
            while self.cuts.front().is_some_and(|&c| c <= self.base) {
                self.cuts.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AnswerRecords<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.len() >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for AnswerRecords<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every write the TLS stream would get.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl AsyncWrite for Writes {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: usize) -> Vec<u8> {
        let mut f = vec![
            (payload >> 16) as u8,
            (payload >> 8) as u8,
            payload as u8,
            kind,
            flags,
        ];
        f.extend_from_slice(&stream.to_be_bytes());
        f.resize(FRAME_HEADER + payload, 0xAA);
        f
    }

    fn run(w: &mut AnswerRecords<Writes>, chunks: &[&[u8]]) {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        for c in chunks {
            assert!(
                matches!(Pin::new(&mut *w).poll_write(&mut cx, c), Poll::Ready(Ok(n)) if n == c.len())
            );
        }
        assert!(Pin::new(&mut *w).poll_flush(&mut cx).is_ready());
    }

    #[test]
    fn each_h2_write_ends_with_one_finished_response() {
        // what hyper writes when three answers are ready: HEADERS, HEADERS,
        // HEADERS, DATA, DATA, DATA, after a WINDOW_UPDATE
        let (h1, h3, h5) = (frame(1, 4, 1, 20), frame(1, 4, 3, 20), frame(1, 4, 5, 20));
        let (d1, d3, d5) = (frame(0, 1, 1, 81), frame(0, 1, 3, 81), frame(0, 1, 5, 81));
        let window = frame(8, 0, 0, 4);
        let all = [
            window.clone(),
            h1.clone(),
            h3,
            h5,
            d1.clone(),
            d3.clone(),
            d5.clone(),
        ]
        .concat();
        // written in uneven pieces that split frame headers
        let pieces: Vec<&[u8]> = all.chunks(7).collect();
        let mut w = AnswerRecords::h2(Writes::default());
        run(&mut w, &pieces);
        let writes = &w.inner.0;
        assert_eq!(writes.len(), 3, "one write per answer");
        assert_eq!(writes[0], all[..all.len() - d3.len() - d5.len()]);
        assert!(writes[0].ends_with(&d1));
        assert_eq!(writes[1], d3);
        assert_eq!(writes[2], d5);
        assert_eq!(writes.concat(), all);

        // a body-less response (HEADERS with END_STREAM) is a finished one
        // too, and a tail without an end goes out whole at the flush
        let (e7, settings) = (frame(1, 5, 7, 10), frame(4, 1, 0, 0));
        run(&mut w, &[&e7, &settings, &h1[..5]]);
        assert_eq!(w.inner.0[3], e7);
        assert_eq!(w.inner.0[4], [settings.as_slice(), &h1[..5]].concat());
    }

    #[test]
    fn http1_is_one_write_per_flush() {
        let mut w = AnswerRecords::http1(Writes::default());
        let d = frame(0, 1, 1, 10);
        run(&mut w, &[b"HTTP/1.1 200 OK\r\n", &d, &d]);
        assert_eq!(w.inner.0.len(), 1);
    }
}
