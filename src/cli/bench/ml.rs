//! The ML micro-benchmarks: the risk model's grid search and scoring throughput. They measure
//! `ml/`, not the engine, and live apart from the engine's scenarios.

// The scenarios share the runner's imports and helpers.
use super::*;

/// Simulated history of `rows` deployments, loaded.
pub(super) fn risk_history(
    dir: &Path,
    rows: usize,
) -> anyhow::Result<crate::ml::data::Deployments> {
    let s = crate::ml::simulate::write(dir, rows, 42)?;
    Ok(crate::ml::data::Deployments::load(
        Path::new(&s.history),
        &crate::ml::spec::ModelSpec::default(),
        true,
    )?)
}

/// The search `vigil risk train` runs (5 folds, seed 42, every core) over `grid`.
pub(super) fn risk_grid_search(
    d: &crate::ml::data::Deployments,
    grid: &crate::ml::search::Grid,
) -> anyhow::Result<crate::ml::search::SearchResult> {
    Ok(crate::ml::search::search(
        d.x.view(),
        d.labels(),
        &crate::ml::search::SearchOptions {
            grid,
            folds: 5,
            seed: 42,
            threads: crate::ml::forest::threads(),
            progress: &|_| {},
            stop: &|| false,
        },
    )?)
}

/// Wall time of the grid search (what scikit-learn's `GridSearchCV` is timed on).
pub(super) fn risk_search(dir: &Path, rows: usize) -> anyhow::Result<Duration> {
    let d = risk_history(dir, rows)?;
    let grid = crate::ml::search::Grid::parse(&["min_samples=2".into()])?;
    let start = Instant::now();
    risk_grid_search(&d, &grid)?;
    Ok(start.elapsed())
}

/// Time to score `rows` rows (the history tiled) with the forest `vigil risk train` picks on
/// 2,000 simulated deployments (default grid, seed 42).
pub(super) fn risk_score(dir: &Path, rows: usize) -> anyhow::Result<Duration> {
    use linfa::traits::Fit;
    let d = risk_history(dir, 2_000)?;
    let found = risk_grid_search(&d, &crate::ml::search::Grid::default())?;
    let best = found.best();
    let forest = crate::ml::forest::ForestParams {
        trees: best.trees,
        max_depth: best.max_depth,
        min_samples_split: best.min_samples_split,
        ..Default::default()
    }
    .fit(&linfa::Dataset::new(
        d.x.clone(),
        ndarray::Array1::from(d.labels().to_vec()),
    ))?;
    eprintln!(
        "risk_score: {} trees, max depth {}, min samples split {}, {} nodes",
        best.trees,
        best.max_depth
            .map_or_else(|| "none".to_string(), |d| d.to_string()),
        best.min_samples_split,
        forest.trees.iter().map(|t| t.nodes.len()).sum::<usize>()
    );
    let idx: Vec<usize> = (0..rows).map(|i| i % d.len()).collect();
    let x = d.x.select(ndarray::Axis(0), &idx);
    let start = Instant::now();
    let p = forest.predict_proba(x.view());
    let took = start.elapsed();
    anyhow::ensure!(p.len() == rows, "scored {} of {rows} rows", p.len());
    Ok(took)
}
