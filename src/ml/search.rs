//! Hyperparameter search: every grid point scored by stratified k-fold cross-validation on F1
//! of the rollback class, as scikit-learn's `GridSearchCV(scoring="f1", cv=StratifiedKFold)`.
//!
//! One forest of the grid's largest tree count is grown per fold, depth and minimum split
//! size, and its first 50/100/… trees score the smaller counts (see
//! [`Forest::predict_proba_prefixes`]): the same numbers as growing each separately, for the
//! cost of the largest.

use std::collections::BTreeSet;
use std::time::Instant;

use ndarray::{ArrayView2, Axis};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ml::MlError;
use crate::ml::baseline::Baseline;
use crate::ml::bins::{Binned, MAX_BINS};
use crate::ml::forest::{Forest, ForestParams};
use crate::ml::metrics::{Confusion, roc_auc};

/// The values tried for each hyperparameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub trees: Vec<usize>,
    /// `None` is unlimited depth.
    pub depth: Vec<Option<usize>>,
    pub min_samples_split: Vec<usize>,
}

impl Default for Grid {
    fn default() -> Self {
        Grid {
            trees: vec![50, 100, 200],
            depth: vec![None, Some(5), Some(10)],
            min_samples_split: vec![2, 10],
        }
    }
}

impl Grid {
    /// Applies `KEY=V1,V2,…` entries (`trees`, `depth` with `none` for unlimited,
    /// `min_samples`) over the default grid.
    pub fn parse(entries: &[String]) -> Result<Grid, MlError> {
        let mut grid = Grid::default();
        for entry in entries {
            let (key, values) = entry.split_once('=').ok_or_else(|| {
                MlError::Invalid(format!(
                    "--grid `{entry}`: write KEY=V1,V2 with KEY trees, depth or min_samples"
                ))
            })?;
            let numbers = |allow_none: bool| -> Result<Vec<Option<usize>>, MlError> {
                values
                    .split(',')
                    .map(|v| match v.trim() {
                        "none" if allow_none => Ok(None),
                        v => v
                            .parse::<usize>()
                            .ok()
                            .filter(|&n| n > 0)
                            .map(Some)
                            .ok_or_else(|| {
                                MlError::Invalid(format!(
                                    "--grid {key}: `{v}` is not a positive whole number{}",
                                    if allow_none { " or none" } else { "" }
                                ))
                            }),
                    })
                    .collect()
            };
            match key.trim() {
                "trees" => grid.trees = numbers(false)?.into_iter().flatten().collect(),
                "depth" => grid.depth = numbers(true)?,
                "min_samples" | "min_samples_split" => {
                    grid.min_samples_split = numbers(false)?
                        .into_iter()
                        .flatten()
                        .map(|n| n.max(2))
                        .collect()
                }
                other => {
                    return Err(MlError::Invalid(format!(
                        "--grid: unknown key `{other}`; use trees, depth or min_samples"
                    )));
                }
            }
        }
        grid.trees.sort_unstable();
        grid.trees.dedup();
        Ok(grid)
    }

    pub fn points(&self) -> usize {
        self.trees.len() * self.depth.len() * self.min_samples_split.len()
    }
}

/// One grid point's cross-validated scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub trees: usize,
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub mean_f1: f64,
    pub std_f1: f64,
    pub mean_auc: f64,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// Every grid point, best first.
    pub scored: Vec<Scored>,
    pub folds: usize,
    /// The logistic baseline's cross-validated F1 and AUC, same folds.
    pub baseline_f1: f64,
    pub baseline_auc: f64,
    pub seconds: f64,
}

impl SearchResult {
    pub fn best(&self) -> &Scored {
        &self.scored[0]
    }
}

/// How far the search is, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub fold: usize,
    /// This update ends a fold.
    pub fold_finished: bool,
    pub best_f1: Option<f64>,
}

/// Validation rows of each of `k` folds, each fold with the same share of each class.
pub fn stratified_folds(y: &[bool], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.random_range(0..=i));
        }
        // Dealt round-robin, continuing where the other class stopped, so fold sizes differ
        // by at most one.
        for i in idx {
            folds[next % k].push(i);
            next += 1;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    folds
}

pub struct SearchOptions<'a> {
    pub grid: &'a Grid,
    pub folds: usize,
    pub seed: u64,
    pub threads: usize,
    pub progress: &'a (dyn Fn(Progress) + Sync),
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

fn as_f64(y: &[bool]) -> Vec<f64> {
    y.iter().map(|&b| f64::from(u8::from(b))).collect()
}

/// Cross-validates every grid point (and the baseline) on `x`, `y`.
pub fn search(x: ArrayView2<f64>, y: &[bool], o: &SearchOptions) -> Result<SearchResult, MlError> {
    let start = Instant::now();
    let positives = y.iter().filter(|&&b| b).count();
    let smallest = positives.min(y.len() - positives);
    if o.folds < 2 {
        return Err(MlError::Invalid("--folds must be at least 2".into()));
    }
    if smallest < o.folds {
        return Err(MlError::Invalid(format!(
            "{} folds need at least {} rows of each class; the smaller class has {smallest}",
            o.folds, o.folds
        )));
    }
    if o.grid.points() == 0 {
        return Err(MlError::Invalid("the grid is empty".into()));
    }
    let max_trees = o.grid.trees.iter().copied().max().unwrap_or(1);
    let folds = stratified_folds(y, o.folds, o.seed);
    let n_points = o.grid.depth.len() * o.grid.min_samples_split.len();
    let total = o.folds * n_points;
    // f1s[point][fold], aucs likewise; point = (depth, min split, trees) in grid order.
    let mut f1s = vec![vec![0.0; o.folds]; o.grid.points()];
    let mut aucs = vec![vec![0.0; o.folds]; o.grid.points()];
    let (mut base_f1, mut base_auc) = (0.0, 0.0);
    let mut done = 0;
    for (k, val) in folds.iter().enumerate() {
        let in_val: BTreeSet<usize> = val.iter().copied().collect();
        let train: Vec<usize> = (0..y.len()).filter(|i| !in_val.contains(i)).collect();
        let x_tr = x.select(Axis(0), &train);
        let y_tr: Vec<bool> = train.iter().map(|&i| y[i]).collect();
        let x_val = x.select(Axis(0), val);
        let y_val: Vec<bool> = val.iter().map(|&i| y[i]).collect();
        let binned = Binned::new(x_tr.view(), MAX_BINS);
        let y_trf = as_f64(&y_tr);
        let mut point = 0;
        for &depth in &o.grid.depth {
            for &min_split in &o.grid.min_samples_split {
                let forest: Forest = ForestParams {
                    trees: max_trees,
                    max_depth: depth,
                    min_samples_split: min_split,
                    seed: o.seed,
                    ..ForestParams::default()
                }
                .grow(&binned, &y_trf, o.threads, o.stop)?;
                let probs = forest.predict_proba_prefixes(x_val.view(), &o.grid.trees);
                for p in probs {
                    let pred: Vec<bool> = p.iter().map(|&v| v > 0.5).collect();
                    f1s[point][k] = Confusion::new(&pred, &y_val).f1();
                    aucs[point][k] =
                        roc_auc(p.as_slice().unwrap_or_default(), &y_val).unwrap_or(0.5);
                    point += 1;
                }
                done += 1;
                let best_f1 = f1s
                    .iter()
                    .map(|f| f[..=k].iter().sum::<f64>() / (k + 1) as f64)
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
                (o.progress)(Progress {
                    done,
                    total,
                    fold: k + 1,
                    fold_finished: done % n_points == 0,
                    best_f1,
                });
            }
        }
        let b = Baseline::fit(x_tr.view(), &y_tr)?;
        let p = b.predict_proba(x_val.view());
        let pred: Vec<bool> = p.iter().map(|&v| v > 0.5).collect();
        base_f1 += Confusion::new(&pred, &y_val).f1() / o.folds as f64;
        base_auc +=
            roc_auc(p.as_slice().unwrap_or_default(), &y_val).unwrap_or(0.5) / o.folds as f64;
    }
    let mut scored = Vec::new();
    let mut point = 0;
    for &depth in &o.grid.depth {
        for &min_split in &o.grid.min_samples_split {
            for &trees in &o.grid.trees {
                let f = &f1s[point];
                let mean = f.iter().sum::<f64>() / f.len() as f64;
                let var = f.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / f.len() as f64;
                scored.push(Scored {
                    trees,
                    max_depth: depth,
                    min_samples_split: min_split,
                    mean_f1: mean,
                    std_f1: var.sqrt(),
                    mean_auc: aucs[point].iter().sum::<f64>() / f.len() as f64,
                });
                point += 1;
            }
        }
    }
    // Best F1 first; among equals, the cheaper model (fewer trees, shallower) wins, so the
    // choice does not depend on grid order.
    scored.sort_by(|a, b| {
        b.mean_f1
            .total_cmp(&a.mean_f1)
            .then(a.trees.cmp(&b.trees))
            .then(
                a.max_depth
                    .unwrap_or(usize::MAX)
                    .cmp(&b.max_depth.unwrap_or(usize::MAX)),
            )
            .then(b.min_samples_split.cmp(&a.min_samples_split))
    });
    Ok(SearchResult {
        scored,
        folds: o.folds,
        baseline_f1: base_f1,
        baseline_auc: base_auc,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_disjoint_and_cover_every_row() {
        let y: Vec<bool> = (0..103).map(|i| i % 5 == 0).collect();
        let folds = stratified_folds(&y, 5, 1);
        let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        for f in &folds {
            let pos = f.iter().filter(|&&i| y[i]).count();
            assert!((4..=5).contains(&pos), "{pos} positives");
            assert!((20..=21).contains(&f.len()), "{} rows", f.len());
        }
        assert_eq!(folds, stratified_folds(&y, 5, 1));
        assert_ne!(folds, stratified_folds(&y, 5, 2));
    }

    #[test]
    fn grid_entries_override_the_default() {
        let g = Grid::parse(&["trees=20,10".into(), "depth=none,3".into()]).unwrap();
        assert_eq!(g.trees, vec![10, 20]);
        assert_eq!(g.depth, vec![None, Some(3)]);
        assert_eq!(g.min_samples_split, vec![2, 10]);
        assert_eq!(g.points(), 8);
        for bad in ["trees", "leaves=3", "depth=0", "trees=many"] {
            assert!(Grid::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
