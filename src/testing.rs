//! What the unit tests of several modules share.

/// A deterministic generator for seeded corpora (xorshift64; the seed must not be 0).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One to three mutations of `input`: a flipped bit, an overwritten byte, a cut, appended
/// garbage, a duplicated span, or random bytes over one of `length_fields` (byte ranges where
/// the format keeps a length), so that lengths disagree with what follows.
pub fn mutate(rng: &mut Rng, input: &[u8], length_fields: &[std::ops::Range<usize>], filler: u8) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(out.len());
        match rng.below(6) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = rng.next() as u8,
            2 => out.truncate(at),
            3 => {
                let count = 1 + rng.below(64);
                out.extend(rng.bytes(count))
            }
            4 if !length_fields.is_empty() => {
                let field = length_fields[rng.below(length_fields.len())].clone();
                if out.len() >= field.end {
                    let len = field.len();
                    out[field].copy_from_slice(&rng.bytes(len));
                }
            }
            _ => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                let span = out[at..end].to_vec();
                out.splice(at..at, span);
            }
        }
        if out.is_empty() {
            out.push(filler);
        }
    }
    out
}
