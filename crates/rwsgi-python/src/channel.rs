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

/// Zero-copy view of a Python `bytes` object as [`Bytes`].
pub(crate) fn to_bytes(bytes: &Bound<'_, PyBytes>) -> Bytes {
    Bytes::from_owner(PyBackedBytes::from(bytes.clone()))
}
