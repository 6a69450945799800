-- The model registry keeps everything, for every table: predictions are never deleted or
-- changed, versions and alerts never changed, deployment events only name versions that
-- exist, and the production pointer only ever points at a version of its own model.

CREATE TRIGGER model_predictions_keep BEFORE DELETE ON model_predictions
BEGIN SELECT RAISE(ABORT, 'the model registry keeps everything: predictions are never deleted'); END;
CREATE TRIGGER model_predictions_append_only BEFORE UPDATE ON model_predictions
BEGIN SELECT RAISE(ABORT, 'predictions are append-only'); END;
-- SQLite stores NaN as NULL (refused by NOT NULL for `predicted`); infinities are refused here.
CREATE TRIGGER model_predictions_finite BEFORE INSERT ON model_predictions
WHEN abs(NEW.predicted) > 1.7976931348623157e308
  OR (NEW.actual IS NOT NULL AND abs(NEW.actual) > 1.7976931348623157e308)
BEGIN SELECT RAISE(ABORT, 'predictions must be finite numbers'); END;

CREATE TRIGGER model_versions_append_only BEFORE UPDATE ON model_versions
BEGIN SELECT RAISE(ABORT, 'model versions are never changed; register a new version'); END;
CREATE TRIGGER model_alerts_append_only BEFORE UPDATE ON model_alerts
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;

CREATE TRIGGER model_deployments_known_versions BEFORE INSERT ON model_deployments
WHEN NOT EXISTS (SELECT 1 FROM model_versions WHERE model = NEW.model AND version = NEW.to_version)
  OR (NEW.from_version IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM model_versions WHERE model = NEW.model AND version = NEW.from_version))
BEGIN SELECT RAISE(ABORT, 'a deployment event names a version that does not exist'); END;

CREATE TRIGGER models_production_exists BEFORE UPDATE OF production_version ON models
WHEN NEW.production_version IS NOT NULL
 AND NOT EXISTS (SELECT 1 FROM model_versions WHERE model = NEW.name AND version = NEW.production_version)
BEGIN SELECT RAISE(ABORT, 'production can only be a registered version of the model'); END;
CREATE TRIGGER models_name_fixed BEFORE UPDATE OF name, created_at ON models
BEGIN SELECT RAISE(ABORT, 'a model keeps its name and creation time'); END;
