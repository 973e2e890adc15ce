//! A rising list of log positions (every record's, or one stream's) in
//! about half the memory of a `Vec<u64>`: each position is kept as 4 bytes
//! above the base of its block, and a new block begins wherever the next
//! position is 4 GiB or more above the current base. The index holds two
//! positions for every event ever written (in `$all` and in its stream),
//! so this is 8 bytes an event where two `Vec<u64>`s took 16.
//!
//! Reading a position finds its block by a binary search among the blocks
//! (one per 4 GiB of log for `$all`; few for any stream), then adds.

/// Positions in rising order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Positions {
    /// Each block: the place of its first position in the list, and the
    /// base its positions are kept above.
    blocks: Vec<(usize, u64)>,
    /// Each position, less its block's base.
    above: Vec<u32>,
}

impl Positions {
    pub fn len(&self) -> usize {
        self.above.len()
    }

    pub fn is_empty(&self) -> bool {
        self.above.is_empty()
    }

    /// Adds a position, which must be above every position in the list.
    pub fn push(&mut self, position: u64) {
        let base = match self.blocks.last() {
            Some(&(_, base)) if position - base <= u64::from(u32::MAX) => base,
            _ => {
                self.blocks.push((self.above.len(), position));
                position
            }
        };
        self.above.push((position - base) as u32);
    }

    pub fn extend(&mut self, positions: impl IntoIterator<Item = u64>) {
        for p in positions {
            self.push(p);
        }
    }

    /// The base of the block that holds place `i`.
    fn base(&self, i: usize) -> u64 {
        let block = self.blocks.partition_point(|(first, _)| *first <= i) - 1;
        self.blocks[block].1
    }

    /// The position at place `i`.
    pub fn get(&self, i: usize) -> Option<u64> {
        let above = *self.above.get(i)?;
        Some(self.base(i) + u64::from(above))
    }

    pub fn last(&self) -> Option<u64> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// The first place whose position `pred` is false for (`pred` is true
    /// for a prefix of the list, as for `slice::partition_point`).
    pub fn partition_point(&self, mut pred: impl FnMut(u64) -> bool) -> usize {
        // The block first, then within it.
        let block = self
            .blocks
            .partition_point(|&(first, base)| pred(base + u64::from(self.above[first])));
        let Some(block) = block.checked_sub(1) else {
            return 0;
        };
        let (first, base) = self.blocks[block];
        let end = self.blocks.get(block + 1).map_or(self.len(), |b| b.0);
        first + self.above[first..end].partition_point(|a| pred(base + u64::from(*a)))
    }

    /// The positions at places `from` on.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = u64> + '_ {
        (from..self.len()).map(|i| self.get(i).expect("a place in the list"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever is read is what a plain list of the same positions
    /// answers, across blocks (positions 4 GiB and more apart).
    #[test]
    fn positions_read_as_a_plain_list_does() {
        let mut plain = Vec::new();
        let mut p = 0u64;
        for i in 0..3_000u64 {
            p += match i % 500 {
                0 => 5 << 30,
                1 => u64::from(u32::MAX),
                2 => u64::from(u32::MAX) + 1,
                _ => 1 + i % 300,
            };
            plain.push(p);
        }
        let mut positions = Positions::default();
        positions.extend(plain.iter().copied());
        assert!(
            positions.blocks.len() > 6,
            "{} blocks",
            positions.blocks.len()
        );
        assert_eq!(positions.len(), plain.len());
        for (i, p) in plain.iter().enumerate() {
            assert_eq!(positions.get(i), Some(*p));
        }
        assert_eq!(positions.get(plain.len()), None);
        assert_eq!(positions.last(), plain.last().copied());
        let mut probes: Vec<u64> = plain.iter().flat_map(|p| [p - 1, *p, p + 1]).collect();
        probes.extend([0, u64::MAX]);
        for q in probes {
            assert_eq!(
                positions.partition_point(|x| x < q),
                plain.partition_point(|x| *x < q),
                "< {q}"
            );
            assert_eq!(
                positions.partition_point(|x| x <= q),
                plain.partition_point(|x| *x <= q),
                "<= {q}"
            );
        }
        let from: Vec<u64> = positions.iter_from(2_990).collect();
        assert_eq!(from, plain[2_990..]);
        assert_eq!(positions.iter_from(5_000).count(), 0);
        let empty = Positions::default();
        assert_eq!((empty.get(0), empty.last()), (None, None));
        assert_eq!(empty.partition_point(|_| true), 0);
    }
}
