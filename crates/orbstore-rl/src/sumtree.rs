//! A sum-tree over priorities: set and total in O(log n), proportional lookup in O(log n), the
//! structure prioritized experience replay samples with. Hand-written: no maintained crate
//! offers one that supports removal by swap (which the replay buffer's eviction needs).

/// Priorities at positions `0..len`, with their running sums.
#[derive(Debug, Clone, Default)]
pub struct SumTree {
    /// Leaves at `cap..2*cap`; node `i` holds the sum of `2i` and `2i+1`.
    nodes: Vec<f64>,
    cap: usize,
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
        if self.cap == 0 {
            0.0
        } else {
            self.nodes[1]
        }
    }

    /// The priority at a position.
    pub fn get(&self, i: usize) -> f64 {
        self.nodes[self.cap + i]
    }

    /// Appends a priority.
    pub fn push(&mut self, p: f64) {
        if self.len == self.cap {
            let leaves: Vec<f64> = (0..self.len).map(|i| self.get(i)).collect();
            self.cap = (self.cap * 2).max(16);
            self.nodes = vec![0.0; 2 * self.cap];
            for (i, v) in leaves.into_iter().enumerate() {
                self.nodes[self.cap + i] = v;
            }
            for i in (1..self.cap).rev() {
                self.nodes[i] = self.nodes[2 * i] + self.nodes[2 * i + 1];
            }
        }
        self.len += 1;
        self.set(self.len - 1, p);
    }

    /// Sets the priority at a position.
    pub fn set(&mut self, i: usize, p: f64) {
        let mut n = self.cap + i;
        self.nodes[n] = p.max(0.0);
        while n > 1 {
            n /= 2;
            self.nodes[n] = self.nodes[2 * n] + self.nodes[2 * n + 1];
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

    /// The position whose cumulative range holds `x` (0 <= x < total).
    pub fn find(&self, mut x: f64) -> usize {
        let mut n = 1;
        while n < self.cap {
            let left = self.nodes[2 * n];
            if x < left {
                n *= 2;
            } else {
                x -= left;
                n = 2 * n + 1;
            }
        }
        (n - self.cap).min(self.len.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_finds_proportionally() {
        let mut t = SumTree::new();
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
}
