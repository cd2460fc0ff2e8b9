//! FastCGI records as a web server writes them, for the tests of the codec
//! and of the core.

/// Record types.
pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
/// The responder role.
pub const RESPONDER: u16 = 1;

/// One record: header, `content`, `padding` bytes of padding (filled with
/// 0xEE so a codec that reads padding as content shows it).
pub fn record(kind: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let len = u16::try_from(content.len()).unwrap_or_else(|_| panic!("a record over 65535 bytes"));
    let mut out = vec![1, kind];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[padding, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0xee, usize::from(padding)));
    out
}

/// A BEGIN_REQUEST record.
pub fn begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
    let [hi, lo] = role.to_be_bytes();
    record(BEGIN_REQUEST, id, &[hi, lo, flags, 0, 0, 0, 0, 0], 0)
}

/// A whole stream of `kind` for `id`: `content` in records of at most
/// `size` bytes (nginx pads each to a multiple of 8), then the empty one.
pub fn stream(kind: u8, id: u16, content: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in content.chunks(size.max(1)) {
        out.extend(record(kind, id, piece, ((8 - piece.len() % 8) % 8) as u8));
    }
    out.extend(record(kind, id, b"", 0));
    out
}

/// A name-value block from pairs, one-byte lengths below 128 (else four
/// with the high bit), or all four-byte when `long`.
pub fn params_with(pairs: &[(&[u8], &[u8])], long: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        out.extend(nv_len(name.len(), long));
        out.extend(nv_len(value.len(), long));
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
    out
}

/// A name-value length: one byte below 128, else four with the high bit.
pub fn nv_len(n: usize, long: bool) -> Vec<u8> {
    match u8::try_from(n) {
        Ok(short) if short < 128 && !long => vec![short],
        _ => (u32::try_from(n).unwrap_or(u32::MAX) | 0x8000_0000).to_be_bytes().to_vec(),
    }
}

/// BEGIN_REQUEST (responder, `flags`) and the PARAMS stream of `pairs`:
/// a request head, with no STDIN yet.
pub fn head(id: u16, flags: u8, pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = begin(id, RESPONDER, flags);
    out.extend(stream(PARAMS, id, &params_with(pairs, false), 65535));
    out
}

/// A whole request as nginx sends it: BEGIN_REQUEST, one PARAMS record,
/// the empty PARAMS record, STDIN records of at most 32 KiB, the empty
/// STDIN record.
pub fn request(id: u16, flags: u8, pairs: &[(&[u8], &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = head(id, flags, pairs);
    out.extend(stream(STDIN, id, body, 32768));
    out
}
