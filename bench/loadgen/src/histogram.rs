//! Latency histogram with fixed log-linear buckets (HdrHistogram's layout, much reduced):
//! recording a sample is an index computation and an increment, never an allocation.

/// Each power of two is split into 2^SUB_BITS equal buckets, so a bucket is at most 1/32
/// (about 3%) of its values wide.
const SUB_BITS: u32 = 5;
const SUB_BUCKETS: u64 = 1 << SUB_BITS;
/// Enough buckets for any u64: values below SUB_BUCKETS get one each, then one row of
/// SUB_BUCKETS per remaining power of two.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) << SUB_BITS;

pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, max: 0 }
    }

    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max = 0;
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest recorded value that `quantile` (0 to 1) of all samples do not exceed, to
    /// within the width of its bucket (reported as the bucket's upper end); 0 if empty.
    pub fn quantile(&self, quantile: f64) -> u64 {
        let rank = ((quantile * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return highest_in(bucket).min(self.max);
            }
        }
        0
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS {
        return value as usize;
    }
    // The top SUB_BITS + 1 bits of the value pick its bucket: the position of the highest
    // one bit picks the row, the SUB_BITS after it the bucket within the row.
    let shift = 63 - value.leading_zeros() - SUB_BITS;
    (((shift + 1) as usize) << SUB_BITS) + ((value >> shift) - SUB_BUCKETS) as usize
}

fn highest_in(bucket: usize) -> u64 {
    let row = (bucket >> SUB_BITS) as u32;
    if row == 0 {
        return bucket as u64;
    }
    let shift = row - 1;
    let lowest = ((bucket as u64 & (SUB_BUCKETS - 1)) | SUB_BUCKETS) << shift;
    lowest + ((1u64 << shift) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_hold_their_values() {
        let mut previous = 0;
        for value in (0..100_000).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let bucket = bucket_of(value);
            assert!(bucket < BUCKETS);
            assert!(bucket == previous || bucket == previous + 1 || value > 100_000);
            assert!(highest_in(bucket) >= value);
            assert!(bucket == 0 || highest_in(bucket - 1) < value);
            previous = bucket;
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        let mut histogram = Histogram::new();
        for value in 1..=1000 {
            histogram.record(value * 1000);
        }
        let median = histogram.quantile(0.5);
        assert!((500_000..=500_000 + 500_000 / 32).contains(&median), "{median}");
        assert_eq!(histogram.quantile(1.0), 1_000_000);
        assert_eq!(histogram.max(), 1_000_000);
        histogram.clear();
        assert_eq!(histogram.quantile(0.99), 0);
    }
}
