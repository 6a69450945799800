-- Delivery of the outbox (issue 5). A row is one delivery: one email to its recipients, or
-- one POST to one webhook URL, so each channel succeeds, retries and fails on its own and a
-- retry never repeats a delivery that already went out.

ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'email'
    CHECK (channel IN ('email', 'webhook'));
-- JSON array: the email addresses, or the one webhook URL.
ALTER TABLE outbox ADD COLUMN recipients TEXT NOT NULL DEFAULT '[]';
-- The HTML alternative of `body` (email only).
ALTER TABLE outbox ADD COLUMN html TEXT;
-- Not tried again before this (retry backoff); NULL = at once.
ALTER TABLE outbox ADD COLUMN next_attempt_at TEXT;
-- What the server said last time (the reply of a rejection, or the connection error).
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN sent_at TEXT;
-- A sender holds a row while it delivers it, so two senders never deliver the same row at
-- once; a sender that dies loses the lease when it expires.
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN lease_until TEXT;

CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
