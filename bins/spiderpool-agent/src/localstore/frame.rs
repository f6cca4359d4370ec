//! Framing of journal and snapshot records: one line per record,
//! `LLLLLLLL CCCCCCCC <json>\n`, where `L` is the JSON's length in bytes and `C` its CRC-32
//! (IEEE), both as 8 lower-case hex digits. The JSON stays readable (`cut -d' ' -f3-`), and a
//! torn or damaged record is detected by its length, its newline or its checksum.

/// Bytes before the JSON: two 8-digit hex fields and two spaces.
pub(crate) const HEADER_LEN: usize = 18;

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE 802.3, reflected, as zlib and `crc32` compute it).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8);
    }
    !c
}

/// The framed line for `json`.
pub(crate) fn encode(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + HEADER_LEN + 1);
    out.extend_from_slice(format!("{:08x} {:08x} ", json.len(), crc32(json)).as_bytes());
    out.extend_from_slice(json);
    out.push(b'\n');
    out
}

/// What is at one offset of a framed file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A whole, intact record: its JSON and the offset after its newline.
    Record(&'a [u8], usize),
    /// Not a whole intact record; why.
    Bad(&'static str),
}

fn hex8(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b).ok()?;
    if s.len() != 8 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Decodes the record starting at `data[at..]`.
pub(crate) fn decode(data: &[u8], at: usize) -> Decoded<'_> {
    let rest = &data[at.min(data.len())..];
    if rest.len() < HEADER_LEN {
        return Decoded::Bad("truncated header");
    }
    let (Some(len), Some(crc)) = (hex8(&rest[0..8]), hex8(&rest[9..17])) else {
        return Decoded::Bad("malformed header");
    };
    if rest[8] != b' ' || rest[17] != b' ' {
        return Decoded::Bad("malformed header");
    }
    let len = len as usize;
    let Some(end) = HEADER_LEN.checked_add(len) else {
        return Decoded::Bad("malformed header");
    };
    if rest.len() <= end {
        return Decoded::Bad("truncated record");
    }
    let json = &rest[HEADER_LEN..end];
    if rest[end] != b'\n' {
        return Decoded::Bad("record not terminated by a newline");
    }
    if crc32(json) != crc {
        return Decoded::Bad("checksum mismatch");
    }
    Decoded::Record(json, at + end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn round_trip_and_damage() {
        let a = encode(br#"{"seq":1}"#);
        let b = encode(br#"{"seq":2}"#);
        assert_eq!(&a[..9], b"00000009 ");
        let mut data = [a.clone(), b.clone()].concat();
        assert_eq!(decode(&data, 0), Decoded::Record(br#"{"seq":1}"#, a.len()));
        assert_eq!(
            decode(&data, a.len()),
            Decoded::Record(br#"{"seq":2}"#, data.len())
        );
        assert_eq!(decode(&data, data.len()), Decoded::Bad("truncated header"));
        data.pop();
        assert_eq!(decode(&data, a.len()), Decoded::Bad("truncated record"));
        let mut flipped = a.clone();
        flipped[20] ^= 1;
        assert_eq!(decode(&flipped, 0), Decoded::Bad("checksum mismatch"));
        assert_eq!(
            decode(&[0u8; 40], 0),
            Decoded::Bad("malformed header"),
            "zero-filled tail"
        );
    }
}
