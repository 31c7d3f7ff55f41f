//! A sum-tree over priorities: set and total in O(log n), proportional lookup in O(log n), the
//! structure prioritized experience replay samples with. Hand-written: no maintained crate
//! offers one that supports removal by swap (which the replay buffer's eviction needs).
//!
//! The tree is 8-ary and flat: each level is one array of 64-byte nodes of 8 sums, the leaves
//! (the priorities themselves) in the bottom one. A lookup reads one cache line per level (7
//! levels for 1M priorities, the upper ones cached) where a binary tree reads one per level of 20;
//! [`SumTree::find_many`] descends for many values at once, level by level, so that their reads
//! overlap. It holds about 9.2 bytes per priority (a binary tree over a power-of-two capacity
//! holds 16 to 32).

/// How many children a node has: 8 `f64`s fill a 64-byte cache line.
const FANOUT: usize = 8;

/// One node: the sums of its 8 children (at the bottom level, 8 priorities).
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Node([f64; FANOUT]);

impl Node {
    /// The sum of the node's entries (always added in the same order, so that a sum recomputed
    /// from the same entries is the same).
    fn sum(&self) -> f64 {
        let v = &self.0;
        ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]))
    }

    /// The child whose cumulative range holds `x`, with `x` made relative to it. `x` at or
    /// past the node's sum (rounding) picks the last child with a positive sum, so that a
    /// zero priority is never picked while another is positive.
    fn pick(&self, x: &mut f64) -> usize {
        let mut last = 0;
        for (c, &w) in self.0.iter().enumerate() {
            if *x < w {
                return c;
            }
            *x -= w;
            if w > 0.0 {
                last = c;
            }
        }
        *x = self.0[last];
        last
    }
}

/// Priorities at positions `0..len`, with their running sums.
#[derive(Debug, Clone, Default)]
pub struct SumTree {
    /// `levels[0]` holds the priorities, 8 to a node; entry `c` of node `j` of level `k + 1` is
    /// the sum of node `8j + c` of level `k`. The last level has one node (none when empty).
    /// Entries past `len` are 0.
    levels: Vec<Vec<Node>>,
    len: usize,
}

impl SumTree {
    /// An empty tree.
    pub fn new() -> SumTree {
        SumTree::default()
    }

    /// How many priorities it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sum of all priorities.
    pub fn total(&self) -> f64 {
        self.levels.last().map_or(0.0, |top| top[0].sum())
    }

    /// The priority at a position.
    pub fn get(&self, i: usize) -> f64 {
        self.levels[0][i / FANOUT].0[i % FANOUT]
    }

    /// Appends a priority.
    pub fn push(&mut self, p: f64) {
        if self.len.is_multiple_of(FANOUT) && self.len / FANOUT == self.levels.first().map_or(0, Vec::len) {
            self.grow();
        }
        self.len += 1;
        self.set(self.len - 1, p);
    }

    /// Adds a leaf node of zeros, and the nodes above it that the levels then need.
    fn grow(&mut self) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(Node::default());
        let mut k = 0;
        loop {
            let need = self.levels[k].len().div_ceil(FANOUT);
            if k + 1 == self.levels.len() {
                if self.levels[k].len() == 1 {
                    return;
                }
                // The top split: a new top above it, holding the sums of the old top's nodes.
                let mut top = Node::default();
                for (c, node) in self.levels[k].iter().enumerate() {
                    top.0[c] = node.sum();
                }
                self.levels.push(vec![top]);
                return;
            }
            // New nodes hold zeros, as the leaves below them do.
            let above = &mut self.levels[k + 1];
            if above.len() < need {
                above.resize(need, Node::default());
            }
            k += 1;
        }
    }

    /// Sets the priority at a position (a negative or NaN one is 0).
    pub fn set(&mut self, i: usize, p: f64) {
        let mut j = i / FANOUT;
        self.levels[0][j].0[i % FANOUT] = p.max(0.0);
        for k in 1..self.levels.len() {
            let s = self.levels[k - 1][j].sum();
            self.levels[k][j / FANOUT].0[j % FANOUT] = s;
            j /= FANOUT;
        }
    }

    /// Removes position `i`, moving the last priority into it (as `Vec::swap_remove`).
    pub fn swap_remove(&mut self, i: usize) {
        let last = self.len - 1;
        if i != last {
            let p = self.get(last);
            self.set(i, p);
        }
        self.set(last, 0.0);
        self.len -= 1;
    }

    /// The position whose cumulative range holds `x` (0 <= x < total). An `x` at or past the
    /// total (rounding) gives the last position with a positive priority.
    pub fn find(&self, mut x: f64) -> usize {
        let mut j = 0;
        for level in self.levels.iter().rev() {
            j = j * FANOUT + level[j].pick(&mut x);
        }
        j.min(self.len.saturating_sub(1))
    }

    /// The positions of several values, each as [`SumTree::find`] gives it, appended to `out`.
    /// The tree is descended for all of them together, a level at a time, so that the memory
    /// reads of different values overlap instead of waiting on one another.
    pub fn find_many(&self, xs: &[f64], out: &mut Vec<usize>) {
        let start = out.len();
        let mut xs: Vec<f64> = xs.to_vec();
        out.resize(start + xs.len(), 0);
        let nodes = &mut out[start..];
        for level in self.levels.iter().rev() {
            for (j, x) in nodes.iter_mut().zip(xs.iter_mut()) {
                *j = *j * FANOUT + level[*j].pick(x);
            }
        }
        let last = self.len.saturating_sub(1);
        for j in nodes {
            *j = (*j).min(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_finds_proportionally() {
        let mut t = SumTree::new();
        assert_eq!((t.total(), t.find(0.5)), (0.0, 0));
        for p in [1.0, 2.0, 3.0, 4.0] {
            t.push(p);
        }
        assert_eq!(t.total(), 10.0);
        assert_eq!([t.find(0.5), t.find(1.5), t.find(3.5), t.find(9.9)], [0, 1, 2, 3]);
        t.set(0, 0.0);
        assert_eq!(t.find(0.0), 1);
        t.swap_remove(1);
        assert_eq!((t.len(), t.total(), t.get(1)), (3, 7.0, 4.0));
        for i in 0..100 {
            t.push(i as f64);
        }
        assert_eq!(t.total(), 7.0 + 4950.0);
    }

    /// Against a plain list of priorities (the model): after pushes past several level splits,
    /// sets and swap-removes, every cumulative boundary maps to the position a linear scan
    /// gives, and the total is the sum.
    #[test]
    fn matches_a_linear_scan_across_levels() {
        let mut t = SumTree::new();
        let mut model: Vec<f64> = Vec::new();
        // Small integers: every sum is exact, so boundaries can be compared exactly.
        let p = |i: usize| ((i * 7919) % 13) as f64;
        for i in 0..5000 {
            t.push(p(i));
            model.push(p(i).max(0.0));
            if i % 3 == 0 {
                let k = (i * 31) % model.len();
                t.set(k, p(i + 1));
                model[k] = p(i + 1);
            }
            if i % 5 == 0 {
                let k = (i * 17) % model.len();
                t.swap_remove(k);
                model.swap_remove(k);
            }
        }
        assert_eq!(t.len(), model.len());
        assert_eq!(t.total(), model.iter().sum::<f64>());
        let mut xs = Vec::new();
        let mut expect = Vec::new();
        let mut acc = 0.0;
        for (i, &w) in model.iter().enumerate() {
            assert_eq!(t.get(i), w);
            if w > 0.0 {
                xs.extend([acc, acc + w / 2.0, acc + w - 0.25]);
                expect.extend([i, i, i]);
            }
            acc += w;
        }
        let found: Vec<usize> = xs.iter().map(|&x| t.find(x)).collect();
        assert_eq!(found, expect);
        let mut many = vec![usize::MAX];
        t.find_many(&xs, &mut many);
        assert_eq!(many[1..], expect[..], "find_many is find, appended");
        let last_positive = model.iter().rposition(|&w| w > 0.0).unwrap();
        assert_eq!(t.find(acc), last_positive, "past the total: the last positive priority");
        assert_eq!(t.find(acc * 2.0), last_positive);
    }

    #[test]
    fn negative_and_nan_priorities_are_zero() {
        let mut t = SumTree::new();
        for p in [-1.0, f64::NAN, 2.0] {
            t.push(p);
        }
        assert_eq!((t.total(), t.get(0), t.get(1), t.find(0.0)), (2.0, 0.0, 0.0, 2));
    }
}
