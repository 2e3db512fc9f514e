//! The bytes connections send: one fixed pseudo-random sequence that every connection enters
//! at its own origin. Any byte of any connection's stream is then known from its offset
//! alone, so sending is a slice of this table and checking the echo is one `memcmp`, with
//! nothing to generate or remember per message.

/// Length of the repeating sequence. A prime, so no message or chunk size is a multiple of it
/// and consecutive messages of one connection differ.
const PERIOD: usize = 65_521;

/// The longest slice `Pattern::slice` returns: the most one read or write moves.
pub const MAX_SPAN: usize = 64 * 1024;

/// How far apart consecutive connections' origins are in the sequence.
const ORIGIN_STRIDE: u64 = 4_099;

pub struct Pattern {
    /// The sequence, followed by its first MAX_SPAN bytes again, so that every slice of up to
    /// MAX_SPAN bytes is contiguous.
    bytes: Box<[u8]>,
}

impl Pattern {
    pub fn new() -> Pattern {
        // xorshift64: cheap, and any fixed sequence works as long as it is not periodic in
        // small steps (a shifted or repeated echo must not look right).
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let sequence: Vec<u8> = (0..PERIOD)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect();
        Pattern { bytes: sequence.iter().cycle().take(PERIOD + MAX_SPAN).copied().collect() }
    }

    /// Where the stream of the `number`th connection opened starts in the sequence.
    pub fn origin(number: u64) -> u64 {
        number.wrapping_mul(ORIGIN_STRIDE)
    }

    /// `len` (at most MAX_SPAN) bytes of the stream that starts at `origin`, from stream
    /// offset `offset` on.
    pub fn slice(&self, origin: u64, offset: u64, len: usize) -> &[u8] {
        let start = (origin.wrapping_add(offset) % PERIOD as u64) as usize;
        &self.bytes[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_wrap_around_the_period() {
        let pattern = Pattern::new();
        let whole: Vec<u8> = (0..PERIOD as u64 + 10).map(|offset| pattern.slice(7, offset, 1)[0]).collect();
        assert_eq!(pattern.slice(7, PERIOD as u64 - 5, 10), &whole[PERIOD - 5..PERIOD + 5]);
        assert_eq!(pattern.slice(7, 0, 10), pattern.slice(7, PERIOD as u64, 10));
    }

    #[test]
    fn consecutive_messages_differ() {
        let pattern = Pattern::new();
        assert_ne!(pattern.slice(0, 0, 64), pattern.slice(0, 64, 64));
        assert_ne!(pattern.slice(Pattern::origin(0), 0, 64), pattern.slice(Pattern::origin(1), 0, 64));
    }
}
