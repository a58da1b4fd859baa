//! Keeping the `k` smallest scores of a stream of (score, id) pairs.
//!
//! Scores are appended to a buffer of at most `2k` entries; when it fills, a selection keeps
//! the best `k` and remembers the worst kept score, so every later score that cannot enter the
//! top `k` is rejected by one comparison — the common case once a search is under way.

/// Scores [`TopK::push_all`] tests against the threshold at once.
const PUSH_CHUNK: usize = 16;

/// The `k` smallest scores seen, with their ids.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    items: Vec<(f32, u64)>,
    threshold: f32,
}

fn order(a: &(f32, u64), b: &(f32, u64)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// Pairs every score with its position and sorts the `head` smallest first, as
/// [`sort_head`] does: ranking a query's partitions, of which it probes the first few.
pub fn rank_head(scores: &[f32], head: usize) -> Vec<(f32, u64)> {
    let mut items: Vec<(f32, u64)> = scores.iter().copied().zip(0u64..).collect();
    sort_head(&mut items, head);
    items
}

/// Puts the `head` smallest items first, sorted by score (ties by id), and the rest after
/// them in no particular order.
pub fn sort_head(items: &mut [(f32, u64)], head: usize) {
    let head = head.min(items.len());
    if head > 0 && head < items.len() {
        items.select_nth_unstable_by(head - 1, order);
    }
    items[..head].sort_unstable_by(order);
}

impl TopK {
    pub fn new(k: usize) -> Self {
        // Capped so that a `k` far above what a search can return reserves nothing it will not
        // use; the buffer grows if it has to.
        let k = k.clamp(1, usize::MAX / 2);
        Self {
            k,
            items: Vec::with_capacity((2 * k).min(1 << 16)),
            threshold: f32::INFINITY,
        }
    }

    /// Offers one pair.
    pub fn push(&mut self, score: f32, id: u64) {
        if score < self.threshold || (self.threshold == f32::INFINITY && score == f32::INFINITY) {
            self.items.push((score, id));
            if self.items.len() == 2 * self.k {
                self.shrink();
            }
        }
    }

    /// Offers `scores[i]` with `ids[i]` for every `i`.
    ///
    /// Once the threshold is set, most rows of a long scan lose to it: each run of
    /// [`PUSH_CHUNK`] scores is first tested as a whole (a compare that vectorises), and
    /// only a run holding a winner is offered pair by pair.
    pub fn push_all(&mut self, scores: &[f32], ids: &[u64]) {
        for (s, i) in scores.chunks(PUSH_CHUNK).zip(ids.chunks(PUSH_CHUNK)) {
            let t = self.threshold;
            if t == f32::INFINITY || s.iter().fold(false, |any, v| any | (*v < t)) {
                for (s, id) in s.iter().zip(i) {
                    self.push(*s, *id);
                }
            }
        }
    }

    /// How many pairs are held (at most `k` once sorted).
    pub fn len(&self) -> usize {
        self.items.len().min(self.k)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn shrink(&mut self) {
        if self.items.len() > self.k {
            self.items.select_nth_unstable_by(self.k - 1, order);
            self.items.truncate(self.k);
            self.threshold = self
                .items
                .iter()
                .map(|p| p.0)
                .fold(f32::NEG_INFINITY, f32::max);
        }
    }

    /// The best `k`, smallest score first (ties by id).
    pub fn into_sorted(mut self) -> Vec<(f32, u64)> {
        self.shrink();
        self.items.sort_unstable_by(order);
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_head_puts_the_smallest_first_in_order() {
        let scores: Vec<(f32, u64)> = (0..200u64)
            .map(|i| (((i * 7919) % 61) as f32 - 30.0, i))
            .chain([(-0.0, 200), (0.0, 201)])
            .collect();
        let mut all = scores.clone();
        all.sort_by(order);
        for head in [0, 1, 5, 201, 202, 10_000] {
            let mut got = scores.clone();
            sort_head(&mut got, head);
            let head = head.min(got.len());
            assert_eq!(got[..head], all[..head], "head {head}");
            got[head..].sort_by(order);
            assert_eq!(got, all, "head {head}");
            let plain: Vec<f32> = scores.iter().map(|s| s.0).collect();
            assert_eq!(rank_head(&plain, head)[..head], all[..head], "head {head}");
        }
    }

    #[test]
    fn keeps_the_k_smallest_in_order() {
        let mut t = TopK::new(3);
        let scores: Vec<f32> = (0..100).map(|i| ((i * 37) % 100) as f32).collect();
        let ids: Vec<u64> = (0..100).collect();
        t.push_all(&scores, &ids);
        let best = t.into_sorted();
        assert_eq!(
            best.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![0.0, 1.0, 2.0]
        );
        // Offering many at once keeps what offering them one by one keeps, NaN and
        // infinities included.
        let scores: Vec<f32> = (0..1000u32)
            .map(|i| match i % 97 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                _ => ((i.wrapping_mul(2_654_435_761)) >> 20) as f32,
            })
            .collect();
        let ids: Vec<u64> = (0..1000).collect();
        for k in [1, 10, 100, 2000] {
            let (mut all, mut one) = (TopK::new(k), TopK::new(k));
            all.push_all(&scores, &ids[..999]);
            scores
                .iter()
                .zip(&ids[..999])
                .for_each(|(s, i)| one.push(*s, *i));
            assert_eq!(all.into_sorted(), one.into_sorted(), "k = {k}");
        }
        let mut t = TopK::new(5);
        t.push(f32::INFINITY, 1);
        t.push(2.0, 2);
        assert_eq!(t.into_sorted(), vec![(2.0, 2), (f32::INFINITY, 1)]);
    }
}
