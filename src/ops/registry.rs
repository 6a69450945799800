//! Registry operations shared by the CLI, the tasks and the menu: status, history, compare,
//! check (with guarded automatic rollback), rollback, promote. Every decision is recorded in
//! the audit trail, with its notification, in the same transaction as what it decided.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::notify::message::{ModelEvent, model_event};
use crate::quality::verdict::{Evidence, Judgement, Rules, Scored, Verdict, judge};
use crate::state::Audience;
use crate::store::registry::{
    Alert, AlertKind, Deployment, ModelRecord, ModelVersion, NewAlert, ProductionChange,
};
use crate::store::{ModelStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("there is no model `{0}`")]
    NoSuchModel(String),
    #[error("model `{0}` has no production version")]
    NoProduction(String),
    #[error("model `{0}` has no earlier version to roll back to")]
    NoPrevious(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::state::Kind for ModelError {
    fn kind(&self) -> crate::state::ErrorKind {
        use crate::state::ErrorKind;
        match self {
            ModelError::NoSuchModel(_) => ErrorKind::NotFound,
            ModelError::NoProduction(_) | ModelError::NoPrevious(_) => ErrorKind::Conflict,
            ModelError::Store(e) => e.kind(),
        }
    }
}

/// A model at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub model: ModelRecord,
    pub production: Option<ModelVersion>,
    /// What `rollback --previous` would restore.
    pub previous: Option<ModelVersion>,
    pub versions: usize,
    pub last_alert: Option<Alert>,
}

/// One version with when it was in production.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub version: ModelVersion,
    pub in_production: bool,
    /// Periods in production, oldest first.
    pub production_periods: Vec<Period>,
}

/// `[from, until)` in production; `until` is `None` for the current period.
pub type Period = (DateTime<Utc>, Option<DateTime<Utc>>);

/// How `check` may act.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Who hears about DEGRADED and INCONCLUSIVE verdicts and about rollbacks.
    pub notify: Audience,
    pub rules: Rules,
    pub auto_rollback: bool,
    /// Record what would be done without changing production.
    pub dry_run: bool,
    /// Roll back only when the sequential test has established the worsening: the evidence
    /// accumulated since the production change, valid however often the check looks…
    pub sequential: bool,
    /// …and after this many DEGRADED checks in a row (this one included; 1 by default, the
    /// sequential test already guards against noise)…
    pub consecutive: usize,
    /// …unless the worsening is at least this many times the floor, and established.
    pub critical_factor: f64,
    /// No automatic rollback within this long of the model's last production change.
    pub cooldown: Duration,
    /// Which predictions are judged.
    pub window: Window,
}

/// Which labelled predictions a check judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// Those since production last changed: the evidence about the current production
    /// period, and the stream the sequential test accumulates.
    #[default]
    SinceChange,
    /// Those of the last so long (never before the production change).
    Last(Duration),
    /// Every labelled prediction ever logged.
    All,
}

impl std::str::FromStr for Window {
    type Err = String;

    /// `since-change`, `all`, or a duration such as `24h`.
    fn from_str(s: &str) -> Result<Window, String> {
        match s {
            "since-change" | "since_change" => Ok(Window::SinceChange),
            "all" => Ok(Window::All),
            _ => crate::state::duration::parse_duration(s)
                .map(Window::Last)
                .map_err(|e| {
                    format!("`{s}` is not a window: use since-change, all, or a duration such as 24h ({e})")
                }),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Window, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            notify: Audience::default(),
            rules: Rules::default(),
            auto_rollback: false,
            dry_run: false,
            sequential: true,
            consecutive: 1,
            critical_factor: 5.0,
            cooldown: Duration::from_secs(3600),
            window: Window::SinceChange,
        }
    }
}

/// What a check concluded and did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CheckOutcome {
    pub model: String,
    pub production: String,
    pub baseline: Option<String>,
    pub judgement: Judgement,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// Nothing to do (or automatic rollback is off).
    None,
    RolledBack {
        to: String,
    },
    WouldRollBack {
        to: String,
    },
    /// A rollback was called for but a guard said no.
    Refused {
        why: String,
    },
}

/// Outcome of a rollback request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Rollback {
    Done {
        from: String,
        to: String,
    },
    /// The target already is production: nothing changed (rollback is idempotent).
    AlreadyInProduction {
        version: String,
    },
    WouldRollBack {
        from: String,
        to: String,
    },
    Refused {
        why: String,
    },
}

pub async fn model(store: &dyn ModelStore, name: &str) -> Result<ModelRecord, ModelError> {
    store
        .model(name)
        .await?
        .ok_or_else(|| ModelError::NoSuchModel(name.into()))
}

/// The model and its production version; an error when it has none.
async fn with_production(
    store: &dyn ModelStore,
    name: &str,
) -> Result<(ModelRecord, String), ModelError> {
    let m = model(store, name).await?;
    let production = m
        .production_version
        .clone()
        .ok_or_else(|| ModelError::NoProduction(name.into()))?;
    Ok((m, production))
}

async fn version(store: &dyn ModelStore, model: &str, v: &str) -> Result<ModelVersion, ModelError> {
    store.version(model, v).await?.ok_or_else(|| {
        ModelError::Store(StoreError::NoSuchVersion {
            model: model.into(),
            version: v.into(),
        })
    })
}

/// The version production was when `current` last came to production, from the deployment
/// history (`None` for a first deployment).
async fn replaced_by(
    store: &dyn ModelStore,
    name: &str,
    current: &str,
) -> Result<Option<String>, ModelError> {
    let history = store.deployments(name, 1000).await?;
    Ok(history
        .iter()
        .find(|d| d.to_version == current)
        .and_then(|d| d.from_version.clone())
        .filter(|f| f != current))
}

/// The newer version a rollback replaced with `current`, when `current` came to production
/// by a rollback (it replaced a version registered after it).
async fn restored_by_rollback(
    store: &dyn ModelStore,
    name: &str,
    current: &str,
) -> Result<Option<String>, ModelError> {
    let Some(from) = replaced_by(store, name, current).await? else {
        return Ok(None);
    };
    let (Some(cur), Some(prev)) = (
        store.version(name, current).await?,
        store.version(name, &from).await?,
    ) else {
        return Ok(None);
    };
    Ok((prev.created_at > cur.created_at).then_some(from))
}

/// The version production came from: the one before the current production version (by the
/// deployment history), else the newest version registered before it.
pub async fn previous(
    store: &dyn ModelStore,
    m: &ModelRecord,
) -> Result<Option<ModelVersion>, ModelError> {
    let Some(current) = &m.production_version else {
        return Ok(None);
    };
    if let Some(from) = replaced_by(store, &m.name, current).await? {
        return Ok(store.version(&m.name, &from).await?);
    }
    let versions = store.versions(&m.name, 1000).await?;
    let current_at = versions
        .iter()
        .find(|v| &v.version == current)
        .map(|v| v.created_at);
    Ok(versions
        .into_iter()
        .filter(|v| &v.version != current && current_at.is_some_and(|at| v.created_at <= at))
        .max_by_key(|v| v.created_at))
}

/// Every registered model.
pub async fn models(store: &dyn ModelStore) -> Result<Vec<ModelRecord>, ModelError> {
    Ok(store.models().await?)
}

/// A model's production changes, newest first.
pub async fn deployments(
    store: &dyn ModelStore,
    name: &str,
    limit: u32,
) -> Result<Vec<Deployment>, ModelError> {
    model(store, name).await?;
    Ok(store.deployments(name, limit).await?)
}

/// A model's check verdicts, rollbacks and refused changes, newest first.
pub async fn alerts(
    store: &dyn ModelStore,
    name: &str,
    limit: u32,
) -> Result<Vec<Alert>, ModelError> {
    model(store, name).await?;
    Ok(store.alerts(name, limit).await?)
}

pub async fn status(store: &dyn ModelStore, name: &str) -> Result<Status, ModelError> {
    let m = model(store, name).await?;
    let production = match &m.production_version {
        Some(v) => store.version(name, v).await?,
        None => None,
    };
    Ok(Status {
        previous: previous(store, &m).await?,
        versions: store.versions(name, u32::MAX).await?.len(),
        last_alert: store.alerts(name, 1).await?.into_iter().next(),
        production,
        model: m,
    })
}

pub async fn history(
    store: &dyn ModelStore,
    name: &str,
    limit: u32,
) -> Result<Vec<HistoryEntry>, ModelError> {
    let m = model(store, name).await?;
    let mut deployments: Vec<Deployment> = store.deployments(name, u32::MAX).await?;
    deployments.reverse(); // oldest first
    let mut periods: BTreeMap<String, Vec<Period>> = BTreeMap::new();
    for (i, d) in deployments.iter().enumerate() {
        let until = deployments.get(i + 1).map(|next| next.at);
        periods
            .entry(d.to_version.clone())
            .or_default()
            .push((d.at, until));
    }
    Ok(store
        .versions(name, limit)
        .await?
        .into_iter()
        .map(|v| HistoryEntry {
            in_production: m.production_version.as_deref() == Some(v.version.as_str()),
            production_periods: periods.remove(&v.version).unwrap_or_default(),
            version: v,
        })
        .collect())
}

async fn labelled(
    store: &dyn ModelStore,
    model: &str,
    version: &str,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<Scored>, ModelError> {
    Ok(store
        .predictions(model, version, since)
        .await?
        .into_iter()
        .filter_map(|p| {
            Some(Scored {
                actual: p.actual?,
                row_key: p.row_key,
                predicted: p.predicted,
            })
        })
        .collect())
}

/// When the window of a check of `production` starts (`None`: the beginning).
async fn window_start(
    store: &dyn ModelStore,
    name: &str,
    production: &str,
    window: Window,
) -> Result<Option<DateTime<Utc>>, ModelError> {
    let changed = store
        .deployments(name, 1)
        .await?
        .into_iter()
        .next()
        .filter(|d| d.to_version == production)
        .map(|d| d.at);
    Ok(match window {
        Window::All => None,
        Window::SinceChange => changed,
        Window::Last(d) => {
            let from = Utc::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
            Some(changed.map_or(from, |c| c.max(from)))
        }
    })
}

/// Judges `candidate` against `baseline`.
pub async fn compare(
    store: &dyn ModelStore,
    name: &str,
    baseline: &str,
    candidate: &str,
    rules: &Rules,
    since: Option<DateTime<Utc>>,
) -> Result<Judgement, ModelError> {
    let b = version(store, name, baseline).await?;
    let c = version(store, name, candidate).await?;
    let cp = labelled(store, name, candidate, since).await?;
    // The baseline's rows in the same window when it scored them too (shadow scoring,
    // paired); otherwise every row it scored, from when it was in production.
    let mut bp = labelled(store, name, baseline, since).await?;
    if bp.is_empty() && since.is_some() {
        bp = labelled(store, name, baseline, None).await?;
    }
    Ok(judge(
        &Evidence {
            baseline: &bp,
            candidate: &cp,
            baseline_metrics: &b.metrics,
            candidate_metrics: &c.metrics,
        },
        rules,
    ))
}

/// Checks production against the version before it, records the verdict, and rolls back
/// when asked to and every guard agrees: [`assess`] then [`act`].
pub async fn check(
    store: &dyn ModelStore,
    name: &str,
    opts: &CheckOptions,
    actor: &str,
) -> Result<CheckOutcome, ModelError> {
    let mut outcome = assess(store, name, opts).await?;
    outcome.action = act(store, &outcome, opts, actor).await?;
    Ok(outcome)
}

/// Judges production against the version before it and records the verdict in the audit
/// trail (with a notification for DEGRADED and INCONCLUSIVE). Changes nothing else.
pub async fn assess(
    store: &dyn ModelStore,
    name: &str,
    opts: &CheckOptions,
) -> Result<CheckOutcome, ModelError> {
    let (m, production) = with_production(store, name).await?;
    let baseline = previous(store, &m).await?;
    let since = window_start(store, name, &production, opts.window).await?;
    let judgement = match &baseline {
        Some(b) => compare(store, name, &b.version, &production, &opts.rules, since).await?,
        None => crate::quality::verdict::judge(
            &Evidence {
                baseline: &[],
                candidate: &[],
                baseline_metrics: &BTreeMap::new(),
                candidate_metrics: &BTreeMap::new(),
            },
            &opts.rules,
        ),
    };
    let baseline_name = baseline.as_ref().map(|b| b.version.clone());
    let details = serde_json::json!({
        "production": production,
        "baseline": baseline_name,
        "judgement": judgement,
    });
    let notify =
        matches!(judgement.verdict, Verdict::Degraded | Verdict::Inconclusive).then(|| {
            let verdict = judgement.verdict.as_str();
            let mut versions = vec![("production", production.clone())];
            if let Some(b) = &baseline_name {
                versions.push(("baseline", b.clone()));
            }
            model_event(
                &ModelEvent {
                    headline: verdict,
                    model: name,
                    subject: format!("{verdict} {name} (production {production})"),
                    summary: format!(
                        "Production {production} of model {name} against {}: {verdict}. {}",
                        baseline_name.as_deref().unwrap_or("(no earlier version)"),
                        judgement.reason
                    ),
                    versions,
                    judgement: serde_json::to_value(&judgement).ok(),
                    action: match (judgement.verdict, opts.auto_rollback, opts.dry_run) {
                        (Verdict::Degraded, true, false) => {
                            "automatic rollback is on: vigil rolls back if its guards agree (a separate message says so)".into()
                        }
                        (Verdict::Degraded, true, true) => {
                            "dry run: nothing is changed".into()
                        }
                        (Verdict::Degraded, false, _) => format!(
                            "this check rolls nothing back (a rollback that follows is announced separately); by hand: `vigil model rollback {name}`"
                        ),
                        _ => "none: more evidence is needed before a verdict".into(),
                    },
                    details: details.clone(),
                },
                opts.notify.clone(),
            )
        });
    store
        .record_alert(
            &NewAlert {
                model: name.into(),
                kind: AlertKind::Check,
                verdict: Some(judgement.verdict.as_str().into()),
                message: judgement.reason.clone(),
                details,
                dry_run: opts.dry_run,
            },
            notify.as_ref(),
        )
        .await?;
    Ok(CheckOutcome {
        model: name.into(),
        production,
        baseline: baseline_name,
        judgement,
        action: Action::None,
    })
}

/// Acts on an assessment: rolls back to the baseline when the verdict is DEGRADED,
/// `opts.auto_rollback` is set and every guard agrees; records a refusal otherwise.
pub async fn act(
    store: &dyn ModelStore,
    outcome: &CheckOutcome,
    opts: &CheckOptions,
    actor: &str,
) -> Result<Action, ModelError> {
    let name = outcome.model.as_str();
    let judgement = &outcome.judgement;
    let (true, true, Some(target)) = (
        judgement.verdict == Verdict::Degraded,
        opts.auto_rollback,
        &outcome.baseline,
    ) else {
        return Ok(Action::None);
    };
    let details = serde_json::json!({"production": outcome.production, "baseline": target, "judgement": judgement});
    if let Some(why) = guard(store, name, judgement, opts).await? {
        record(
            store,
            name,
            AlertKind::Refused,
            why.clone(),
            details,
            opts.dry_run,
        )
        .await?;
        return Ok(Action::Refused { why });
    }
    Ok(
        match rollback(
            store,
            name,
            Some(target),
            &format!(
                "automatic: production {} is DEGRADED ({})",
                outcome.production, judgement.reason
            ),
            actor,
            opts.dry_run,
            &opts.notify,
        )
        .await?
        {
            Rollback::Done { to, .. } => Action::RolledBack { to },
            Rollback::WouldRollBack { to, .. } => Action::WouldRollBack { to },
            Rollback::AlreadyInProduction { .. } => Action::None,
            Rollback::Refused { why } => Action::Refused { why },
        },
    )
}

/// `None` when an automatic rollback may go ahead, else why not.
async fn guard(
    store: &dyn ModelStore,
    name: &str,
    j: &Judgement,
    opts: &CheckOptions,
) -> Result<Option<String>, ModelError> {
    let critical = match (j.estimate, j.floor, j.interval) {
        (Some(e), Some(f), Some((lo, _))) => f > 0.0 && e >= opts.critical_factor * f && lo > f,
        _ => false,
    };
    if !critical && opts.sequential {
        match j.sequential {
            Some(s) if s.crossed() => {}
            Some(s) => {
                return Ok(Some(format!(
                    "the evidence since the production change has not yet established the worsening across repeated checks (sequential test: ln Λ = {:.2} of {:.2} needed, worsening between {:.4} and {:.4}); automatic rollback waits for it (or a critical breach of {}× the threshold)",
                    s.statistic, s.threshold, s.lower, s.upper, opts.critical_factor
                )));
            }
            None => {
                return Ok(Some(format!(
                    "no sequential evidence (the verdict did not come from labelled predictions); automatic rollback waits for it (or a critical breach of {}× the threshold)",
                    opts.critical_factor
                )));
            }
        }
    }
    if !critical && opts.consecutive > 1 {
        // This check is DEGRADED; count the real (not dry-run) checks before it that were too.
        // A real check was just recorded as the newest one, so skip it.
        let earlier = store
            .alerts(name, 1000)
            .await?
            .into_iter()
            .filter(|a| a.kind == crate::store::registry::AlertKind::Check && !a.dry_run)
            .skip(usize::from(!opts.dry_run))
            .take_while(|a| a.verdict.as_deref() == Some("DEGRADED"))
            .count();
        let in_a_row = 1 + earlier;
        if in_a_row < opts.consecutive {
            return Ok(Some(format!(
                "{in_a_row} DEGRADED check(s) in a row; automatic rollback waits for {} (or a critical breach of {}× the threshold)",
                opts.consecutive, opts.critical_factor
            )));
        }
    }
    if let Some(last) = store.deployments(name, 1).await?.first() {
        let since = Utc::now() - last.at;
        if since.to_std().unwrap_or_default() < opts.cooldown {
            return Ok(Some(format!(
                "production changed {} ago ({} → {}); no automatic rollback within the {} cool-down",
                humantime::format_duration(Duration::from_secs(since.num_seconds().max(0) as u64)),
                last.from_version.as_deref().unwrap_or("(none)"),
                last.to_version,
                humantime::format_duration(opts.cooldown)
            )));
        }
    }
    Ok(None)
}

/// Records an audit-trail entry of `kind` about `name`, without a notification: a rollback
/// request that changed nothing (already in production, a dry run) or a refusal.
async fn record(
    store: &dyn ModelStore,
    name: &str,
    kind: AlertKind,
    message: String,
    details: serde_json::Value,
    dry_run: bool,
) -> Result<(), ModelError> {
    store
        .record_alert(
            &NewAlert {
                model: name.into(),
                kind,
                verdict: None,
                message,
                details,
                dry_run,
            },
            None,
        )
        .await?;
    Ok(())
}

/// Rolls production back to `to` (or the previous version). Idempotent: asking for the
/// version already in production changes nothing and says so. Refuses a target that is
/// itself worse than production. Two concurrent rollbacks cannot both act: the change is
/// conditional on the production version this call saw.
pub async fn rollback(
    store: &dyn ModelStore,
    name: &str,
    to: Option<&str>,
    reason: &str,
    actor: &str,
    dry_run: bool,
    notify: &Audience,
) -> Result<Rollback, ModelError> {
    let (m, current) = with_production(store, name).await?;
    // "Roll back" with no version means: take the current version out. When the current
    // version is itself what a rollback restored, the version it replaced was already taken
    // out — a second alert about it (two checks a moment apart, under load one after the
    // other rather than at once) must not roll forward to it again. Naming a version does.
    if to.is_none()
        && let Some(from) = restored_by_rollback(store, name, &current).await?
    {
        let message = format!(
            "{current} is production because {from} was rolled back to it; nothing to do (name a version to change production)"
        );
        record(
            store,
            name,
            AlertKind::Rollback,
            message,
            serde_json::json!({"to": current, "rolled_back_from": from}),
            dry_run,
        )
        .await?;
        return Ok(Rollback::AlreadyInProduction { version: current });
    }
    let target = match to {
        Some(v) => version(store, name, v).await?,
        None => previous(store, &m)
            .await?
            .ok_or_else(|| ModelError::NoPrevious(name.into()))?,
    };
    if target.version == current {
        let message = format!("{current} is already in production; nothing to do");
        record(
            store,
            name,
            AlertKind::Rollback,
            message,
            serde_json::json!({"to": current}),
            dry_run,
        )
        .await?;
        return Ok(Rollback::AlreadyInProduction { version: current });
    }
    // Never roll back to a version that is itself worse than production.
    let j = compare(
        store,
        name,
        &current,
        &target.version,
        &Rules::default(),
        None,
    )
    .await?;
    if j.verdict == Verdict::Degraded {
        let why = format!(
            "{} is worse than production {current}: {}",
            target.version, j.reason
        );
        record(
            store,
            name,
            AlertKind::Refused,
            why.clone(),
            serde_json::json!({"to": target.version, "judgement": j}),
            dry_run,
        )
        .await?;
        return Ok(Rollback::Refused { why });
    }
    let details = serde_json::json!({"from": current, "to": target.version, "reason": reason});
    if dry_run {
        let message = format!("dry run: would roll back {current} → {}", target.version);
        record(store, name, AlertKind::Rollback, message, details, true).await?;
        return Ok(Rollback::WouldRollBack {
            from: current,
            to: target.version,
        });
    }
    let change = ProductionChange {
        model: name.into(),
        expect: Some(current.clone()),
        to: target.version.clone(),
        reason: reason.into(),
        actor: actor.into(),
        alert: Some(NewAlert {
            model: name.into(),
            kind: AlertKind::Rollback,
            verdict: None,
            message: format!("rolled back {current} → {}: {reason}", target.version),
            details: details.clone(),
            dry_run: false,
        }),
        notify: Some(model_event(
            &ModelEvent {
                headline: "ROLLBACK",
                model: name,
                subject: format!("ROLLBACK {name} {current} → {}", target.version),
                summary: format!(
                    "Model {name} was rolled back from {current} to {} by {actor}: {reason}",
                    target.version
                ),
                versions: vec![
                    ("rolled back", current.clone()),
                    ("production", target.version.clone()),
                ],
                judgement: None,
                action: format!(
                    "{} is production now; `vigil model history {name}` shows the trail",
                    target.version
                ),
                details,
            },
            notify.clone(),
        )),
    };
    match store.set_production(&change).await {
        Ok(_) => Ok(Rollback::Done {
            from: current,
            to: target.version,
        }),
        Err(StoreError::Conflict { what, .. }) => {
            // Someone changed production first; this request was about a state that is gone.
            let why = format!("production changed while rolling back ({what}); nothing done");
            record(
                store,
                name,
                AlertKind::Refused,
                why.clone(),
                serde_json::json!({"to": target.version}),
                false,
            )
            .await?;
            Ok(Rollback::Refused { why })
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes `to` production (from whatever it is now).
pub async fn promote(
    store: &dyn ModelStore,
    name: &str,
    to: &str,
    reason: &str,
    actor: &str,
) -> Result<Option<Deployment>, ModelError> {
    let m = model(store, name).await?;
    version(store, name, to).await?;
    if m.production_version.as_deref() == Some(to) {
        return Ok(None);
    }
    let details = serde_json::json!({"from": m.production_version, "to": to, "reason": reason});
    Ok(Some(
        store
            .set_production(&ProductionChange {
                model: name.into(),
                expect: m.production_version.clone(),
                to: to.into(),
                reason: reason.into(),
                actor: actor.into(),
                alert: Some(NewAlert {
                    model: name.into(),
                    kind: AlertKind::Promotion,
                    verdict: None,
                    message: format!(
                        "promoted {to} (was {}): {reason}",
                        m.production_version.as_deref().unwrap_or("none")
                    ),
                    details,
                    dry_run: false,
                }),
                notify: None,
            })
            .await?,
    ))
}
