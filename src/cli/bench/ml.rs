//! The ML micro-benchmarks: the risk model's grid search, scoring throughput and artifact. They measure
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

/// Load times of the binary artifact and of the same model as JSON (format 1), best of three
/// each, for a full-depth 100-tree forest trained on `rows` simulated deployments. Sizes go to
/// stderr.
pub(super) fn risk_artifact(dir: &Path, rows: usize) -> anyhow::Result<(Duration, Duration)> {
    use crate::ml::risk::{RiskModel, TrainOptions};
    let s = crate::ml::simulate::write(dir, rows, 42)?;
    let start = Instant::now();
    let model = crate::ml::risk::train(&TrainOptions {
        data: Path::new(&s.history),
        spec: &crate::ml::spec::ModelSpec::default(),
        choice: crate::ml::risk::ModelChoice::Forest,
        folds: 2,
        grid: crate::ml::search::Grid::parse(&[
            "trees=100".into(),
            "depth=none".into(),
            "min_samples=2".into(),
        ])?,
        seed: 42,
        holdout: 0.2,
        threads: crate::ml::forest::threads(),
        progress: &|_| {},
        stop: &|| false,
    })?;
    let trained = start.elapsed();
    let out = dir.join("models");
    let start = Instant::now();
    let (bin, bin_sha, bin_size) = model.save(&out)?;
    let saved = start.elapsed();
    let (json, json_sha, json_size) =
        crate::ml::artifact::save_json(&model, &out, "deployment_risk")?;
    let best_load = |path: &Path, sha: &str| -> anyhow::Result<Duration> {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            let loaded = RiskModel::load(path, Some(sha))?;
            best = best.min(start.elapsed());
            anyhow::ensure!(
                loaded
                    .forest
                    .trees
                    .iter()
                    .zip(&model.forest.trees)
                    .all(|(a, b)| a.nodes == b.nodes),
                "{} did not load the forest it saved",
                path.display()
            );
        }
        Ok(best)
    };
    let load = best_load(&bin, &bin_sha)?;
    let json_load = best_load(&json, &json_sha)?;
    let nodes: usize = model.forest.trees.iter().map(|t| t.nodes.len()).sum();
    eprintln!(
        "risk_artifact: {rows} rows, 100 full-depth trees, {nodes} nodes (trained in {:.1} s); \
         binary {:.1} MB (saved in {} ms, loaded in {} ms), JSON {:.1} MB (loaded in {} ms)",
        trained.as_secs_f64(),
        bin_size as f64 / 1e6,
        saved.as_millis(),
        load.as_millis(),
        json_size as f64 / 1e6,
        json_load.as_millis()
    );
    Ok((load, json_load))
}
