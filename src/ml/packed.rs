//! A forest's compact stored form, used by the binary risk artifact.
//!
//! In memory a node is 16 bytes (see [`Node`]) so scoring touches little memory; on disk most
//! of those bytes say nothing. A split's threshold is always one of its feature's bin cuts (at
//! most 255 per feature), a leaf's value is one of a few thousand shares, and the children's
//! positions follow from the order the grower laid the nodes out in. So a tree is stored as
//! its nodes in growth order, each a small integer or two: `0, v` for a leaf whose value is
//! `values[v]`, `f + 1, t` for a split on feature `f` at `thresholds[f][t]` — LEB128 varints,
//! one or two bytes each. Reading lays the nodes out exactly as [`Tree::grow`] did (pop a node,
//! give a split its two children at the end, grow the left subtree first), so a loaded forest
//! is node for node the one that was trained, and scores the same rows identically.
//!
//! Every number read is checked (feature, table index, node count, trailing bytes): a damaged
//! or hostile artifact is an error naming the tree, never a panic or an unbounded allocation.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::ml::forest::{Forest, ForestParams};
use crate::ml::tree::{Node, Tree};

/// A forest as the binary artifact holds it.
#[derive(Debug, Serialize, Deserialize)]
pub struct PackedForest {
    params: ForestParams,
    n_features: usize,
    /// Per feature, the distinct thresholds its splits use, ascending.
    thresholds: Vec<Vec<f64>>,
    /// The distinct leaf values, ascending.
    values: Vec<f64>,
    /// Each tree: its node count, then its nodes in growth order (see the module's doc).
    trees: Vec<ByteBuf>,
}

/// A sorted table of distinct values and a lookup into it.
fn table(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values.dedup_by(|a, b| a.to_bits() == b.to_bits());
    values
}

fn index_of(table: &[f64], v: f64) -> usize {
    table
        .binary_search_by(|t| t.total_cmp(&v))
        .unwrap_or_default()
}

fn put(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads stored bytes, one varint at a time.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn next(&mut self) -> Result<usize, String> {
        let mut v = 0usize;
        for shift in (0..64).step_by(7) {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or("its data ends in the middle of a node")?;
            self.at += 1;
            v |= usize::from(b & 0x7f)
                .checked_shl(shift)
                .filter(|x| x >> shift == usize::from(b & 0x7f))
                .ok_or("a number in its data is too large")?;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a number in its data is too large".into())
    }
}

/// The nodes from the root in growth order: a node, then its left subtree, then its right.
fn growth_order(tree: &Tree) -> impl Iterator<Item = usize> + '_ {
    let mut stack = vec![0usize];
    std::iter::from_fn(move || {
        let i = stack.pop()?;
        if !tree.is_leaf(i) {
            let left = tree.nodes[i].left as usize;
            stack.push(left + 1);
            stack.push(left);
        }
        Some(i)
    })
}

impl PackedForest {
    pub fn pack(forest: &Forest) -> PackedForest {
        let leaf = |t: &Tree, i: usize| t.is_leaf(i);
        let mut by_feature = vec![Vec::new(); forest.n_features];
        let mut values = Vec::new();
        for t in &forest.trees {
            for (i, n) in t.nodes.iter().enumerate() {
                if leaf(t, i) {
                    values.push(n.threshold);
                } else if let Some(f) = by_feature.get_mut(n.feature as usize) {
                    f.push(n.threshold);
                }
            }
        }
        let thresholds: Vec<Vec<f64>> = by_feature.into_iter().map(table).collect();
        let values = table(values);
        let trees = forest
            .trees
            .iter()
            .map(|t| {
                let mut body = Vec::with_capacity(t.nodes.len() * 2);
                let mut count = 0;
                for i in growth_order(t) {
                    count += 1;
                    let n = t.nodes[i];
                    if leaf(t, i) {
                        put(&mut body, 0);
                        put(&mut body, index_of(&values, n.threshold));
                    } else {
                        let f = n.feature as usize;
                        put(&mut body, f + 1);
                        put(&mut body, index_of(&thresholds[f], n.threshold));
                    }
                }
                let mut bytes = Vec::with_capacity(body.len() + 5);
                put(&mut bytes, count);
                bytes.extend_from_slice(&body);
                ByteBuf::from(bytes)
            })
            .collect();
        PackedForest {
            params: forest.params.clone(),
            n_features: forest.n_features,
            thresholds,
            values,
            trees,
        }
    }

    pub fn unpack(self) -> Result<Forest, String> {
        if self.thresholds.len() != self.n_features {
            return Err(format!(
                "the forest has {} features but thresholds for {}",
                self.n_features,
                self.thresholds.len()
            ));
        }
        let trees = self
            .trees
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                self.unpack_tree(bytes)
                    .map_err(|e| format!("tree {i}: {e}"))
            })
            .collect::<Result<Vec<Tree>, String>>()?;
        Ok(Forest {
            params: self.params,
            n_features: self.n_features,
            trees,
        })
    }

    fn unpack_tree(&self, bytes: &[u8]) -> Result<Tree, String> {
        let mut r = Reader { bytes, at: 0 };
        let count = r.next()?;
        // Every node takes at least two bytes, so a count the data cannot hold is refused
        // before anything is allocated for it.
        if count == 0 || count > bytes.len() / 2 {
            return Err(format!("it claims {count} nodes in {} bytes", bytes.len()));
        }
        let mut nodes = Vec::with_capacity(count);
        nodes.push(Node::leaf(0, self.n_features));
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            let code = r.next()?;
            let at = r.next()?;
            if code == 0 {
                let value = *self.values.get(at).ok_or_else(|| {
                    format!("node {i} names leaf value {at} of {}", self.values.len())
                })?;
                nodes[i].threshold = value;
                continue;
            }
            let f = code - 1;
            let threshold = *self
                .thresholds
                .get(f)
                .ok_or_else(|| format!("node {i} splits on feature {f} of {}", self.n_features))?
                .get(at)
                .ok_or_else(|| format!("node {i} names threshold {at} of feature {f}"))?;
            let left = nodes.len();
            if left + 2 > count {
                return Err(format!("it has more than the {count} nodes it claims"));
            }
            nodes[i] = Node {
                threshold,
                feature: f as u32,
                left: left as u32,
            };
            nodes.push(Node::leaf(left, self.n_features));
            nodes.push(Node::leaf(left + 1, self.n_features));
            stack.push(left + 1);
            stack.push(left);
        }
        if nodes.len() != count || r.at != bytes.len() {
            return Err(format!(
                "it claims {count} nodes but holds {} in {} of its {} bytes",
                nodes.len(),
                r.at,
                bytes.len()
            ));
        }
        Ok(Tree::from_nodes(nodes))
    }
}

/// The JSON form: the fields as they are.
#[derive(Serialize, Deserialize)]
struct ForestJson<T> {
    params: ForestParams,
    n_features: usize,
    trees: T,
}

impl Serialize for Forest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            ForestJson {
                params: self.params.clone(),
                n_features: self.n_features,
                trees: &self.trees,
            }
            .serialize(s)
        } else {
            PackedForest::pack(self).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Forest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Forest, D::Error> {
        if d.is_human_readable() {
            let f = ForestJson::<Vec<Tree>>::deserialize(d)?;
            Ok(Forest {
                params: f.params,
                n_features: f.n_features,
                trees: f.trees,
            })
        } else {
            PackedForest::deserialize(d)?
                .unpack()
                .map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::bins::Binned;
    use ndarray::Array2;

    fn forest(max_depth: Option<usize>) -> (Forest, Array2<f64>) {
        let x = Array2::from_shape_fn((600, 4), |(i, j)| ((i * 7919 + j * 104_729) % 997) as f64);
        let y: Vec<f64> = (0..600)
            .map(|i| f64::from(u8::from(x[[i, 0]] + (x[[i, 2]] % 13.0) * 40.0 > 700.0)))
            .collect();
        let params = ForestParams {
            trees: 12,
            max_depth,
            ..ForestParams::default()
        };
        let binned = Binned::new(x.view(), 256);
        (params.grow(&binned, &y, 2, &|| false).unwrap(), x)
    }

    #[test]
    fn a_packed_forest_reads_back_node_for_node() {
        for depth in [None, Some(3), Some(1)] {
            let (f, x) = forest(depth);
            let back = PackedForest::pack(&f).unpack().unwrap();
            assert_eq!(back.trees.len(), f.trees.len());
            for (a, b) in f.trees.iter().zip(&back.trees) {
                assert_eq!(a.nodes, b.nodes);
                assert_eq!(a.depth, b.depth);
            }
            assert_eq!(back.predict_proba(x.view()), f.predict_proba(x.view()));
        }
    }

    #[test]
    fn a_packed_forest_is_a_few_bytes_a_node() {
        let (f, _) = forest(None);
        let nodes: usize = f.trees.iter().map(|t| t.nodes.len()).sum();
        let packed = PackedForest::pack(&f);
        let bytes: usize = packed.trees.iter().map(|t| t.len()).sum();
        assert!(nodes > 1000, "{nodes} nodes");
        assert!(bytes <= nodes * 4, "{bytes} bytes for {nodes} nodes");
    }

    #[test]
    fn damaged_tree_data_is_refused_with_the_tree_named() {
        let (f, _) = forest(Some(4));
        let good = PackedForest::pack(&f);
        let damage = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut p = PackedForest::pack(&f);
            let mut t = p.trees[3].to_vec();
            edit(&mut t);
            p.trees[3] = ByteBuf::from(t);
            p.unpack().unwrap_err()
        };
        assert!(damage(&|t| t.truncate(t.len() - 1)).starts_with("tree 3: "));
        assert!(damage(&|t| t.push(0)).contains("claims"));
        // A node count far beyond the data: refused before allocating.
        let e = damage(&|t| {
            t.clear();
            t.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0]);
        });
        assert!(e.contains("claims"), "{e}");
        // A split on a feature the forest does not have.
        let e = damage(&|t| t[1] = 99);
        assert!(e.contains("feature") || e.contains("claims"), "{e}");
        let e = damage(&|t| t.extend_from_slice(&[0xff; 12]));
        assert!(e.contains("too large") || e.contains("claims"), "{e}");
        assert_eq!(good.unpack().unwrap().trees.len(), 12);
    }
}
