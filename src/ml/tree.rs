//! One decision tree, grown on binned features, for classification (0/1 targets) and
//! regression alike.
//!
//! Both use the same split rule: minimise the children's summed squared error. For a 0/1
//! target the weighted Gini impurity of a node is `2·w₀·w₁/w` and its squared error is
//! `w₀·w₁/w`, so the two criteria rank every split the same, and a leaf's mean is the
//! frequency of class 1 among its training rows — the class counts scikit-learn keeps, as one
//! number. That frequency is what makes the forest's probabilities soft.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ml::bins::{Binned, MAX_BINS};

/// A node as prediction reads it: 16 bytes, children side by side, so a walk from the root
/// touches little memory.
///
/// A leaf points at itself (`left` is its own index) and tests the column just past the
/// features, which scoring fills with NaN: `NaN > threshold` is false, so a walk that reached
/// a leaf stays there. Scoring can then take exactly `depth` steps for every row, with no
/// "is this a leaf?" branch for the processor to mispredict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    /// A split's threshold (`x <= threshold` goes left), or a leaf's value.
    pub threshold: f64,
    /// The feature a split tests; for a leaf, the number of features (the NaN column).
    pub feature: u32,
    /// The left child (the right one is `left + 1`); for a leaf, itself.
    pub left: u32,
}

impl Node {
    pub(crate) fn leaf(index: usize, n_features: usize) -> Node {
        Node {
            threshold: 0.0,
            feature: n_features as u32,
            left: index as u32,
        }
    }
}

/// A grown tree: nodes for prediction, and per node the training weight and mean it saw.
///
/// In a JSON artifact (format 1, still read) saved as its nodes only, 16 little-endian bytes
/// each, base64: a full-depth forest on 160,000 rows has millions of nodes, and as JSON
/// objects it took 400 MB. The binary artifact packs it far smaller ([`crate::ml::packed`]). A leaf's value (the class-1 share of its rows) is in the nodes; `weight` and
/// `value` of a loaded tree are empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// Splits on the longest path from the root.
    pub depth: usize,
    /// Weighted number of training rows that reached each node (bootstrap copies counted).
    pub weight: Vec<f64>,
    /// Each node's mean target: for classification, the share of class 1.
    pub value: Vec<f64>,
}

/// A tree as stored.
#[derive(Serialize, Deserialize)]
struct StoredTree {
    nodes: usize,
    /// base64 of `threshold: f64, feature: u32, left: u32` per node, little-endian.
    data: String,
}

const NODE_BYTES: usize = 16;

impl Serialize for Tree {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(self.nodes.len() * NODE_BYTES);
        for n in &self.nodes {
            bytes.extend_from_slice(&n.threshold.to_le_bytes());
            bytes.extend_from_slice(&n.feature.to_le_bytes());
            bytes.extend_from_slice(&n.left.to_le_bytes());
        }
        StoredTree {
            nodes: self.nodes.len(),
            data: BASE64.encode(bytes),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
        use serde::de::Error;
        let stored = StoredTree::deserialize(d)?;
        let bytes = BASE64
            .decode(stored.data.as_bytes())
            .map_err(|e| D::Error::custom(format!("tree data is not base64: {e}")))?;
        if bytes.len() != stored.nodes * NODE_BYTES {
            return Err(D::Error::custom(format!(
                "tree data has {} bytes for {} nodes",
                bytes.len(),
                stored.nodes
            )));
        }
        let nodes = bytes
            .chunks_exact(NODE_BYTES)
            .map(|c| {
                let mut t = [0u8; 8];
                t.copy_from_slice(&c[..8]);
                let mut f = [0u8; 4];
                f.copy_from_slice(&c[8..12]);
                let mut l = [0u8; 4];
                l.copy_from_slice(&c[12..]);
                Node {
                    threshold: f64::from_le_bytes(t),
                    feature: u32::from_le_bytes(f),
                    left: u32::from_le_bytes(l),
                }
            })
            .collect();
        Ok(Tree::from_nodes(nodes))
    }
}

/// How a tree grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeParams {
    /// `None`: until leaves are pure or too small to split.
    pub max_depth: Option<usize>,
    /// A node with fewer rows than this becomes a leaf.
    pub min_samples_split: usize,
    /// Every child keeps at least this many rows.
    pub min_samples_leaf: usize,
    /// Features drawn at random for each split (and more, if all drawn ones are constant in
    /// the node — as scikit-learn does).
    pub max_features: usize,
}

/// A node waiting to be split: its rows are `rows[lo..hi]`.
struct Pending {
    node: usize,
    lo: usize,
    hi: usize,
    depth: usize,
}

/// The best split found so far at a node.
struct Split {
    feature: usize,
    bin: usize,
    score: f64,
}

impl Tree {
    /// Grows a tree on the rows with a positive weight. `y` and `weights` have one entry per
    /// row of `binned`; a weight is how many times the row was drawn into the sample.
    pub fn grow(
        binned: &Binned,
        y: &[f64],
        weights: &[f64],
        params: &TreeParams,
        rng: &mut ChaCha8Rng,
    ) -> Tree {
        let mut rows: Vec<u32> = (0..binned.rows())
            .filter(|&i| weights[i] > 0.0)
            .map(|i| i as u32)
            .collect();
        let n_features = binned.features();
        let mut tree = Tree {
            nodes: vec![Node::leaf(0, n_features)],
            depth: 0,
            weight: vec![0.0],
            value: vec![0.0],
        };
        let mut order: Vec<usize> = (0..n_features).collect();
        let mut hist = vec![(0.0f64, 0.0f64, 0u32); MAX_BINS];
        let mut stack = vec![Pending {
            node: 0,
            lo: 0,
            hi: rows.len(),
            depth: 0,
        }];
        while let Some(p) = stack.pop() {
            let (mut w, mut wy, mut wyy) = (0.0, 0.0, 0.0);
            for &r in &rows[p.lo..p.hi] {
                let (wi, yi) = (weights[r as usize], y[r as usize]);
                w += wi;
                wy += wi * yi;
                wyy += wi * yi * yi;
            }
            let mean = if w > 0.0 { wy / w } else { 0.0 };
            tree.weight[p.node] = w;
            tree.value[p.node] = mean;
            tree.nodes[p.node].threshold = mean;
            let n = p.hi - p.lo;
            let pure = wyy - wy * mean <= 1e-12 * w.max(1.0);
            if pure
                || n < params.min_samples_split.max(2)
                || n < 2 * params.min_samples_leaf.max(1)
                || params.max_depth.is_some_and(|d| p.depth >= d)
            {
                continue;
            }
            let Some(split) = best_split(
                binned,
                y,
                weights,
                &rows[p.lo..p.hi],
                (w, wy),
                params,
                &mut order,
                &mut hist,
                rng,
            ) else {
                continue;
            };
            let codes = &binned.codes[split.feature];
            let slice = &mut rows[p.lo..p.hi];
            let mut mid = 0;
            for i in 0..slice.len() {
                if usize::from(codes[slice[i] as usize]) <= split.bin {
                    slice.swap(i, mid);
                    mid += 1;
                }
            }
            let left = tree.nodes.len();
            tree.nodes[p.node] = Node {
                threshold: binned.cuts[split.feature][split.bin],
                feature: split.feature as u32,
                left: left as u32,
            };
            for child in [left, left + 1] {
                tree.nodes.push(Node::leaf(child, n_features));
                tree.weight.push(0.0);
                tree.value.push(0.0);
            }
            tree.depth = tree.depth.max(p.depth + 1);
            // Right pushed first so the left subtree is grown first: node order is then
            // depth-first, which keeps a walk's nodes close together.
            stack.push(Pending {
                node: left + 1,
                lo: p.lo + mid,
                hi: p.hi,
                depth: p.depth + 1,
            });
            stack.push(Pending {
                node: left,
                lo: p.lo,
                hi: p.lo + mid,
                depth: p.depth + 1,
            });
        }
        tree
    }

    /// A tree read from a file: its nodes, without the training statistics.
    pub fn from_nodes(nodes: Vec<Node>) -> Tree {
        let mut tree = Tree {
            nodes,
            depth: 0,
            weight: Vec::new(),
            value: Vec::new(),
        };
        tree.depth = tree.measure_depth();
        tree
    }

    pub fn is_leaf(&self, i: usize) -> bool {
        self.nodes[i].left as usize == i
    }

    /// The leaf value `row` falls into.
    #[inline]
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        let mut i = 0usize;
        loop {
            let n = self.nodes[i];
            if n.left as usize == i {
                return n.threshold;
            }
            i = n.left as usize + usize::from(row[n.feature as usize] > n.threshold);
        }
    }

    /// Adds the leaf value of each of `rows` to `acc`. Each row has one more value than
    /// there are features, a NaN (see [`Node`]). Rows walk the tree eight at a time and
    /// `depth` steps each: one row's walk is a chain of dependent loads, and interleaving
    /// independent chains without branches lets the processor overlap them (200 full-depth
    /// trees: 160,000 → 400,000 rows a second on 2 cores; `vigil bench --scenario
    /// risk_score`).
    pub fn add_predictions(&self, rows: &[&[f64]], acc: &mut [f64]) {
        const LANES: usize = 8;
        for (rows, acc) in rows.chunks(LANES).zip(acc.chunks_mut(LANES)) {
            let mut at = [0usize; LANES];
            let step = |at: &mut usize, row: &[f64]| {
                let n = self.nodes[*at];
                *at = n.left as usize + usize::from(row[n.feature as usize] > n.threshold);
            };
            if let Ok(full) = <&[&[f64]; LANES]>::try_from(rows) {
                // A fixed lane count the compiler unrolls.
                for _ in 0..self.depth {
                    for l in 0..LANES {
                        step(&mut at[l], full[l]);
                    }
                }
            } else {
                for _ in 0..self.depth {
                    for (l, row) in rows.iter().enumerate() {
                        step(&mut at[l], row);
                    }
                }
            }
            for (l, a) in acc.iter_mut().enumerate() {
                *a += self.nodes[at[l]].threshold;
            }
        }
    }

    pub fn leaves(&self) -> usize {
        (0..self.nodes.len()).filter(|&i| self.is_leaf(i)).count()
    }

    /// The depth from the links; children come after their parents, so one pass suffices.
    /// Links that break that rule are skipped here and refused by [`Tree::check`].
    fn measure_depth(&self) -> usize {
        let mut depth = vec![0usize; self.nodes.len()];
        let mut max = 0;
        for i in 0..self.nodes.len() {
            let left = self.nodes[i].left as usize;
            if left > i && left + 1 < self.nodes.len() {
                depth[left] = depth[i] + 1;
                depth[left + 1] = depth[i] + 1;
                max = max.max(depth[i] + 1);
            }
        }
        max
    }

    /// Checks the links of a tree read from a file, so a damaged artifact is an error rather
    /// than an out-of-bounds panic or an endless walk while scoring.
    pub fn check(&self, n_features: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("a tree has no nodes".into());
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let left = n.left as usize;
            if left == i {
                // A leaf: its test must read the NaN column (or a feature), never past it.
                if n.feature as usize > n_features {
                    return Err(format!("leaf {i} tests column {}", n.feature));
                }
                continue;
            }
            if n.feature as usize >= n_features {
                return Err(format!(
                    "node {i} tests feature {} of {n_features}",
                    n.feature
                ));
            }
            // Children always come after their parent, so every walk ends.
            if left < i || left + 1 >= self.nodes.len() {
                return Err(format!("node {i} has children out of order"));
            }
        }
        Ok(())
    }
}

/// The best split of a node over `max_features` randomly drawn non-constant features.
#[allow(clippy::too_many_arguments)]
fn best_split(
    binned: &Binned,
    y: &[f64],
    weights: &[f64],
    rows: &[u32],
    (w, wy): (f64, f64),
    params: &TreeParams,
    order: &mut [usize],
    hist: &mut [(f64, f64, u32)],
    rng: &mut ChaCha8Rng,
) -> Option<Split> {
    let n_features = order.len();
    let min_leaf = params.min_samples_leaf.max(1) as u32;
    let mut best: Option<Split> = None;
    let mut visited = 0;
    for k in 0..n_features {
        if visited >= params.max_features {
            break;
        }
        // Draw the next feature without replacement (Fisher–Yates, one step at a time).
        let j = rng.random_range(k..n_features);
        order.swap(k, j);
        let f = order[k];
        let n_bins = binned.cuts[f].len() + 1;
        let hist = &mut hist[..n_bins];
        hist.fill((0.0, 0.0, 0));
        let codes = &binned.codes[f];
        for &r in rows {
            let r = r as usize;
            let h = &mut hist[usize::from(codes[r])];
            h.0 += weights[r];
            h.1 += weights[r] * y[r];
            h.2 += 1;
        }
        if hist.iter().filter(|h| h.2 > 0).count() < 2 {
            continue; // constant in this node: does not count towards max_features
        }
        visited += 1;
        let n = rows.len() as u32;
        let (mut lw, mut lwy, mut ln) = (0.0, 0.0, 0u32);
        for (b, h) in hist.iter().enumerate().take(n_bins - 1) {
            lw += h.0;
            lwy += h.1;
            ln += h.2;
            if h.2 == 0 || ln < min_leaf || n - ln < min_leaf {
                continue;
            }
            let (rw, rwy) = (w - lw, wy - lwy);
            if lw <= 0.0 || rw <= 0.0 {
                continue;
            }
            // Minimising the children's squared error = maximising Σ (Σwy)²/Σw.
            let score = lwy * lwy / lw + rwy * rwy / rw;
            if best.as_ref().is_none_or(|s| score > s.score + 1e-12) {
                best = Some(Split {
                    feature: f,
                    bin: b,
                    score,
                });
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;

    fn all_features(n: usize) -> TreeParams {
        TreeParams {
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: n,
        }
    }

    #[test]
    fn splits_where_the_classes_separate_and_keeps_class_shares() {
        // Feature 0 separates three 0s from {1, 1, 0}; feature 1 is noise.
        let x = array![
            [1.0, 5.0],
            [2.0, 1.0],
            [3.0, 4.0],
            [10.0, 2.0],
            [11.0, 6.0],
            [12.0, 5.0]
        ];
        let y = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0];
        let binned = Binned::new(x.view(), 256);
        let params = TreeParams {
            max_depth: Some(1),
            ..all_features(2)
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let t = Tree::grow(&binned, &y, &[1.0; 6], &params, &mut rng);
        // Root: x0 <= 6.5 (midpoint of 3 and 10): left 3 zeros (SSE 0), right 2 of 3 ones.
        // Squared error 2/3; the best split on x1 (<= 5.5) leaves 0.8.
        assert_eq!(t.nodes[0].feature, 0);
        assert_eq!(t.nodes[0].threshold, 6.5);
        assert_eq!(t.value[1], 0.0);
        assert!((t.value[2] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(t.weight[2], 3.0);
        assert_eq!(t.predict_row(&[11.5, 0.0]), 2.0 / 3.0);
        assert_eq!(t.predict_row(&[0.0, 0.0]), 0.0);
    }

    #[test]
    fn full_depth_fits_the_training_rows_and_weights_count_copies() {
        let x = array![[1.0], [2.0], [3.0], [4.0]];
        let y = [0.0, 1.0, 0.0, 1.0];
        let binned = Binned::new(x.view(), 256);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Row 3 not drawn, row 1 drawn twice.
        let t = Tree::grow(
            &binned,
            &y,
            &[1.0, 2.0, 1.0, 0.0],
            &all_features(1),
            &mut rng,
        );
        assert_eq!(t.weight[0], 4.0);
        assert_eq!(t.value[0], 0.5);
        for (row, want) in [(1.0, 0.0), (2.0, 1.0), (3.0, 0.0)] {
            assert_eq!(t.predict_row(&[row]), want);
        }
        assert_eq!(t.leaves(), 3);
        assert!(t.check(1).is_ok());
    }

    #[test]
    fn min_samples_leaf_and_depth_limit_growth() {
        let x = array![[1.0], [2.0], [3.0], [4.0], [5.0], [6.0]];
        let y = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let binned = Binned::new(x.view(), 256);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let params = TreeParams {
            min_samples_leaf: 3,
            ..all_features(1)
        };
        let t = Tree::grow(&binned, &y, &[1.0; 6], &params, &mut rng);
        assert_eq!(t.nodes.len(), 3);
        assert_eq!(t.nodes[0].threshold, 3.5);
        let stump = Tree::grow(
            &binned,
            &y,
            &[1.0; 6],
            &TreeParams {
                max_depth: Some(0),
                ..all_features(1)
            },
            &mut rng,
        );
        assert_eq!(stump.nodes.len(), 1);
        assert_eq!(stump.predict_row(&[1.0]), 0.5);
    }

    #[test]
    fn regression_leaves_hold_means() {
        let x = array![[1.0], [2.0], [10.0], [11.0]];
        let y = [1.0, 3.0, 10.0, 14.0];
        let binned = Binned::new(x.view(), 256);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let params = TreeParams {
            max_depth: Some(1),
            ..all_features(1)
        };
        let t = Tree::grow(&binned, &y, &[1.0; 4], &params, &mut rng);
        assert_eq!(t.nodes[0].threshold, 6.0);
        assert_eq!(t.predict_row(&[0.0]), 2.0);
        assert_eq!(t.predict_row(&[20.0]), 12.0);
    }

    #[test]
    fn a_stored_tree_reads_back_with_the_same_nodes() {
        let x = array![[1.0], [2.0], [10.0], [11.0]];
        let binned = Binned::new(x.view(), 256);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let t = Tree::grow(
            &binned,
            &[1.0, 3.0, 10.0, 14.0],
            &[1.0; 4],
            &all_features(1),
            &mut rng,
        );
        let json = serde_json::to_string(&t).unwrap();
        let back: Tree = serde_json::from_str(&json).unwrap();
        assert_eq!(back.nodes, t.nodes);
        let cut = json.replace("\"nodes\":7", "\"nodes\":8");
        assert!(serde_json::from_str::<Tree>(&cut).is_err());
    }

    #[test]
    fn damaged_links_are_refused() {
        let split = |left| Node {
            threshold: 0.0,
            feature: 0,
            left,
        };
        let t = |nodes: Vec<Node>| Tree {
            nodes,
            depth: 1,
            weight: vec![],
            value: vec![],
        };
        // Children past the end, and a child pointing back at the root.
        assert!(t(vec![split(1)]).check(1).is_err());
        assert!(
            t(vec![split(1), split(0), Node::leaf(2, 1)])
                .check(1)
                .is_err()
        );
        assert!(t(vec![Node::leaf(0, 5)]).check(1).is_err());
        assert!(
            t(vec![split(1), Node::leaf(1, 1), Node::leaf(2, 1)])
                .check(1)
                .is_ok()
        );
    }

    #[test]
    fn interleaved_walks_agree_with_single_ones() {
        let x = ndarray::Array2::from_shape_fn((50, 2), |(i, j)| ((i * 7 + j * 13) % 17) as f64);
        let y: Vec<f64> = (0..50).map(|i| f64::from(u8::from(i % 3 == 0))).collect();
        let binned = Binned::new(x.view(), 256);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let t = Tree::grow(&binned, &y, &[1.0; 50], &all_features(2), &mut rng);
        assert!(t.depth >= 2);
        let padded: Vec<Vec<f64>> = x
            .outer_iter()
            .map(|r| r.iter().copied().chain([f64::NAN]).collect())
            .collect();
        let rows: Vec<&[f64]> = padded.iter().map(Vec::as_slice).collect();
        let mut acc = vec![0.0; 50];
        t.add_predictions(&rows, &mut acc);
        for (r, a) in rows.iter().zip(&acc) {
            assert_eq!(*a, t.predict_row(r));
        }
        let back: Tree = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.depth, t.depth);
    }
}
