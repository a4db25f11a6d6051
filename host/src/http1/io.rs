//! Moving bytes on a connection: reading into a connection's buffer and writing several
//! slices with one `writev`. (A head and a small body, or a chunk's size line, data and CRLF,
//! go out in one system call instead of three.)

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Spare room a read asks for while a head is being read.
pub const HEAD_READ_SIZE: usize = 8 * 1024;
/// Spare room a read asks for while a body streams: large reads, fewer system calls.
pub const BODY_READ_SIZE: usize = 64 * 1024;

/// Read whatever is available into `buf` (making at least `spare` room first). `Ready(Ok(0))`
/// is end of file.
pub fn poll_read_into<R: AsyncRead + ?Sized>(
    reader: Pin<&mut R>,
    buf: &mut BytesMut,
    spare: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < spare / 2 {
        buf.reserve(spare);
    }
    tokio_util::io::poll_read_buf(reader, cx, buf)
}

/// [`poll_read_into`] as a future.
pub async fn read_into<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    buf: &mut BytesMut,
    spare: usize,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_into(Pin::new(&mut *reader), buf, spare, cx)).await
}

/// Write every byte of `parts`, with as few calls as the socket allows, then flush (a TLS
/// stream may hold its last record until flushed; on TCP this costs nothing).
pub async fn write_all_vectored<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    parts: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let mut parts = parts;
    // Skip empty slices up front, so an all-empty write is no call at all.
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        let written = writer.write_vectored(parts).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut parts, written);
    }
    writer.flush().await
}

/// Write all of `bytes`, then flush.
pub async fn write_all_flushed<W: AsyncWrite + Unpin + ?Sized>(
    writer: &mut W,
    bytes: &[u8],
) -> io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}
