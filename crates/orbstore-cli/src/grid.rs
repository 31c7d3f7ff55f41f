//! The demo's environment: a small grid with walls, a start and a goal.

use std::collections::{HashSet, VecDeque};

/// The moves.
pub const ACTIONS: [&str; 4] = ["up", "down", "left", "right"];

/// A grid world: each step costs 1, reaching the goal earns 10 and ends the episode.
pub struct Grid {
    pub rows: i32,
    pub cols: i32,
    pub walls: HashSet<(i32, i32)>,
    pub start: (i32, i32),
    pub goal: (i32, i32),
    pub max_steps: usize,
}

impl Default for Grid {
    fn default() -> Self {
        let walls = [(1, 1), (1, 2), (1, 3), (3, 1), (3, 2), (3, 3), (3, 4)].into_iter().collect();
        Grid { rows: 5, cols: 6, walls, start: (0, 0), goal: (4, 5), max_steps: 100 }
    }
}

impl Grid {
    /// The state id of a cell.
    pub fn state(&self, (r, c): (i32, i32)) -> String {
        format!("r{r}c{c}")
    }

    fn free(&self, (r, c): (i32, i32)) -> bool {
        r >= 0 && c >= 0 && r < self.rows && c < self.cols && !self.walls.contains(&(r, c))
    }

    fn moved(&self, (r, c): (i32, i32), action: &str) -> (i32, i32) {
        let next = match action {
            "up" => (r - 1, c),
            "down" => (r + 1, c),
            "left" => (r, c - 1),
            _ => (r, c + 1),
        };
        if self.free(next) {
            next
        } else {
            (r, c)
        }
    }

    /// Where a move leads, its reward, and whether the episode is over.
    pub fn step(&self, pos: (i32, i32), action: &str) -> ((i32, i32), f64, bool) {
        let next = self.moved(pos, action);
        if next == self.goal {
            (next, 10.0, true)
        } else {
            (next, -1.0, false)
        }
    }

    /// Cells visited following `best` from the start (at most 3 * cells moves), and whether the
    /// goal was reached.
    pub fn greedy_path(&self, best: impl Fn(&str) -> Option<String>) -> (Vec<(i32, i32)>, bool) {
        let mut pos = self.start;
        let mut path = vec![pos];
        for _ in 0..(self.rows * self.cols * 3) {
            let Some(a) = best(&self.state(pos)) else { break };
            pos = self.moved(pos, &a);
            path.push(pos);
            if pos == self.goal {
                return (path, true);
            }
        }
        (path, false)
    }

    /// The fewest moves from start to goal (breadth-first search).
    pub fn shortest_path_len(&self) -> usize {
        let mut seen = HashSet::from([self.start]);
        let mut queue = VecDeque::from([(self.start, 0)]);
        while let Some((p, d)) = queue.pop_front() {
            if p == self.goal {
                return d;
            }
            for a in ACTIONS {
                let n = self.moved(p, a);
                if seen.insert(n) {
                    queue.push_back((n, d + 1));
                }
            }
        }
        0
    }

    /// The grid as text: `#` walls, `S` start, `G` goal, `*` the path.
    pub fn render(&self, path: &[(i32, i32)]) -> String {
        let on_path: HashSet<&(i32, i32)> = path.iter().collect();
        let mut out = String::new();
        for r in 0..self.rows {
            for c in 0..self.cols {
                let ch = if (r, c) == self.start {
                    'S'
                } else if (r, c) == self.goal {
                    'G'
                } else if self.walls.contains(&(r, c)) {
                    '#'
                } else if on_path.contains(&(r, c)) {
                    '*'
                } else {
                    '.'
                };
                out.push(ch);
                out.push(' ');
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walls_and_edges_block_and_the_goal_ends_the_episode() {
        let g = Grid::default();
        assert_eq!(g.step((0, 0), "up"), ((0, 0), -1.0, false));
        assert_eq!(g.step((0, 1), "down"), ((0, 1), -1.0, false), "a wall");
        assert_eq!(g.step((4, 4), "right"), ((4, 5), 10.0, true));
        assert_eq!(g.shortest_path_len(), 9);
    }
}
