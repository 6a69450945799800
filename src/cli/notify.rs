//! `vigil notify`: the outbox seen and handled from the command line.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::cli::Ctx;
use crate::cli::output::{first_line, print_json, table, time};
use crate::notify::{Attempt, Mailer, message};
use crate::ops;
use crate::state::Audience;
use crate::store::{Channel, OutboxMessage, OutboxState};

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Messages in the outbox, oldest first
    List {
        /// Only messages in this state: pending, sent or failed
        #[arg(long)]
        state: Option<OutboxState>,
    },
    /// Queue a failed (or waiting) message to be sent again now
    Retry {
        /// The message (its id, as `vigil notify list` shows)
        id: i64,
    },
    /// Deliver the messages that are due now and exit (the daemon does this on its own)
    Send,
    /// Send a test email with the [smtp] settings and show what the server said
    Test {
        /// Recipient address
        #[arg(long, value_name = "ADDRESS")]
        to: String,
    },
}

pub async fn run(ctx: &Ctx, cmd: NotifyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NotifyCommand::List { state } => {
            let store = ctx.store().await?;
            let messages = ops::outbox::list(store.as_ref(), state).await?;
            if ctx.json {
                print_json(&messages)?;
            } else if messages.is_empty() {
                match state {
                    None => println!("the outbox is empty"),
                    Some(state) => {
                        let all = ops::outbox::list(store.as_ref(), None).await?;
                        let count = |s: OutboxState| all.iter().filter(|m| m.state == s).count();
                        println!(
                            "no {state} messages (pending {}, sent {}, failed {})",
                            count(OutboxState::Pending),
                            count(OutboxState::Sent),
                            count(OutboxState::Failed)
                        );
                    }
                }
            } else {
                println!("{}", list_table(&messages));
            }
        }
        NotifyCommand::Retry { id } => {
            let store = ctx.store().await?;
            let done = ops::outbox::retry(store.as_ref(), id).await?;
            if ctx.json {
                print_json(&done)?;
            } else {
                println!(
                    "message {id} ({}) is queued again; the daemon sends it within {} (or run `vigil notify send`)",
                    done.was,
                    humantime::format_duration(ctx.config.notify.poll_interval)
                );
            }
        }
        NotifyCommand::Send => {
            let store = ctx.store().await?;
            let owner = crate::state::owner::current();
            let pass =
                ops::outbox::send(store.clone(), &ctx.config.smtp, &ctx.config.notify, &owner)
                    .await?;
            if ctx.json {
                print_json(&pass)?;
            } else {
                println!(
                    "sent {}, to retry later {}, failed {}",
                    pass.sent, pass.retrying, pass.failed
                );
                if ctx.config.smtp.host.trim().is_empty() {
                    let waiting = ops::outbox::list(store.as_ref(), Some(OutboxState::Pending))
                        .await?
                        .into_iter()
                        .filter(|m| m.channel == crate::store::Channel::Email)
                        .count();
                    if waiting > 0 {
                        println!(
                            "{waiting} email(s) wait in the outbox: [smtp] host is not set in the config (see docs/notifications.md)"
                        );
                    }
                }
            }
            if pass.failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        NotifyCommand::Test { to } => {
            let mailer = Mailer::from_config(&ctx.config.smtp)?
                .context("[smtp] host is not set in the config; set host, port, tls and from")?;
            crate::notify::address::check_email(&to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
            let host = crate::state::owner::hostname();
            let n = message::test_message(
                Audience {
                    emails: vec![to.clone()],
                    webhooks: Vec::new(),
                },
                &host,
            );
            let m = OutboxMessage {
                id: 0,
                kind: n.kind,
                channel: Channel::Email,
                recipients: vec![to.clone()],
                subject: n.subject,
                body: n.body,
                html: n.html,
                payload: n.payload,
                state: OutboxState::Pending,
                attempts: 0,
                created_at: chrono::Utc::now(),
                next_attempt_at: None,
                last_error: None,
                sent_at: None,
            };
            let (ok, said) = match mailer.send(&m).await {
                Attempt::Sent(reply) => (true, reply),
                Attempt::Transient(e) | Attempt::Permanent(e) => (false, e),
            };
            if ctx.json {
                print_json(&serde_json::json!({
                    "server": mailer.server(), "to": to, "sent": ok, "reply": said,
                }))?;
            } else if ok {
                println!(
                    "sent a test message to {to} via {}; the server said: {said}",
                    mailer.server()
                );
            } else {
                println!(
                    "could not send a test message to {to} via {}: {said}",
                    mailer.server()
                );
            }
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list_table(messages: &[OutboxMessage]) -> String {
    table(
        &[
            "ID", "STATE", "CHANNEL", "TO", "TRIES", "CREATED", "SUBJECT", "NOTE",
        ],
        messages
            .iter()
            .map(|m| {
                let note = match m.state {
                    OutboxState::Sent => format!("sent {}", time(m.sent_at)),
                    OutboxState::Pending => match (&m.last_error, m.next_attempt_at) {
                        (Some(e), Some(at)) => {
                            format!("next try {}: {}", time(Some(at)), first_line(e))
                        }
                        _ => "due".into(),
                    },
                    OutboxState::Failed => {
                        m.last_error.as_deref().map(first_line).unwrap_or_default()
                    }
                };
                vec![
                    m.id.to_string(),
                    m.state.to_string(),
                    m.channel.as_str().into(),
                    m.recipients.join(", "),
                    m.attempts.to_string(),
                    time(Some(m.created_at)),
                    first_line(&m.subject),
                    note,
                ]
            })
            .collect(),
    )
}
