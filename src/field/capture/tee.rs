//! A byte stream that records what passes through it: writes as outbound, reads as inbound,
//! cut into frames and handed to a capture sink. The link above it is unaware of it.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{CaptureSink, Direction, FrameSplitter};

pub struct CaptureStream<S> {
    inner: S,
    splitter: FrameSplitter,
    sink: CaptureSink,
}

impl<S> CaptureStream<S> {
    /// `inter_frame` is the line's silent interval (see [`FrameSplitter::new`]).
    pub fn new(inner: S, sink: CaptureSink, inter_frame: Duration) -> CaptureStream<S> {
        CaptureStream {
            inner,
            splitter: FrameSplitter::new(inter_frame),
            sink,
        }
    }

    fn record(&mut self, direction: Direction, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // the capture is an edge of the system: it stamps frames with the wall clock
        let now = Utc::now().timestamp_micros();
        for frame in self.splitter.push(now, direction, bytes) {
            self.sink.send(frame);
        }
    }
}

impl<S> Drop for CaptureStream<S> {
    fn drop(&mut self) {
        if let Some(frame) = self.splitter.flush() {
            self.sink.send(frame);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CaptureStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = buf.filled()[before..].to_vec();
            this.record(Direction::Inbound, &read);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CaptureStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.record(Direction::Outbound, &buf[..n]);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
