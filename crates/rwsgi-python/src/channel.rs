//! Sending a request's response events to the core from a Python thread:
//! the one place the bridge waits on the core, always without the GIL.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;
use rwsgi_proto::Event;

/// The peer went away: stop producing the response.
#[derive(Debug)]
pub(crate) struct ClientGone;

/// Sends an event, waiting without the GIL while the channel is full.
pub(crate) fn emit(
    py: Python<'_>,
    events: &flume::Sender<Event>,
    event: Event,
) -> Result<(), ClientGone> {
    match events.try_send(event) {
        Ok(()) => Ok(()),
        Err(flume::TrySendError::Full(event)) => {
            let events = events.clone();
            py.detach(move || events.send(event)).map_err(|_| ClientGone)
        }
        Err(flume::TrySendError::Disconnected(_)) => Err(ClientGone),
    }
}

/// Pieces up to this size are copied rather than shared.
const COPY_UP_TO: usize = 1024;

/// A Python `bytes` object as [`Bytes`]: shared without a copy, or copied
/// when small. A shared piece holds a reference that is usually dropped
/// on the I/O thread, without the GIL; pyo3 then queues its release, under
/// a lock, for whichever thread takes the GIL next. For a small piece the
/// copy costs less than that.
pub(crate) fn to_bytes(bytes: &Bound<'_, PyBytes>) -> Bytes {
    match bytes.as_bytes() {
        small if small.len() <= COPY_UP_TO => Bytes::copy_from_slice(small),
        _ => Bytes::from_owner(PyBackedBytes::from(bytes.clone())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn small_pieces_are_copied_larger_ones_shared() {
        Python::attach(|py| {
            for (len, shared) in [(1, false), (COPY_UP_TO, false), (COPY_UP_TO + 1, true)] {
                let object = PyBytes::new(py, &vec![b'x'; len]);
                let piece = to_bytes(&object);
                assert_eq!(piece.len(), len);
                assert_eq!(piece.as_ptr() == object.as_bytes().as_ptr(), shared, "{len} bytes");
            }
        });
    }
}
