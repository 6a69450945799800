//! Telling people: what a message says ([`message`]), where it may go ([`address`]), and
//! how it leaves ([`email`], [`webhook`], [`sender`]).
//!
//! Messages are never sent where the event happens. The executor, the model operations and
//! the daemon write them to the outbox in the same transaction as the event (see
//! `store::outbox`); the [`sender::Sender`] in the daemon (or `vigil notify send`) delivers
//! them later. So an SMTP outage delays mail and loses none, a crash cannot lose the
//! message about what it interrupted, and a hung mail server cannot hold up a run.

pub mod address;
pub mod config;
pub mod email;
pub mod message;
pub mod sender;
pub mod webhook;

pub use config::{NotifyConfig, SmtpConfig, TlsMode};
pub use email::{Mailer, Secret};
pub use sender::{Pass, Sender};

/// How one attempt to hand a message over went, with what the other side said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent(String),
    /// Try again later: no connection, a timeout, a 4xx SMTP reply, an HTTP 5xx.
    Transient(String),
    /// Will never work as it is: a 5xx SMTP reply, an HTTP 4xx, a malformed address.
    Permanent(String),
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{0}")]
    Config(String),
}

impl crate::state::Kind for NotifyError {
    fn kind(&self) -> crate::state::ErrorKind {
        match self {
            NotifyError::Config(_) => crate::state::ErrorKind::Invalid,
        }
    }
}
