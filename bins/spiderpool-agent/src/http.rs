//! The agent's HTTP types: those of [`spiderpool_plugin_support::http`], the one bounded
//! HTTP/1.1 framing module the plugins' client uses too, so the two sides cannot drift.
//!
//! Callers are our plugins (one request per connection, `Connection: close`) and upstream's
//! go-swagger clients (keep-alive disabled), so a connection may carry several requests but
//! usually carries one. [`Limits::SERVER`] bounds what a client can make the agent hold; the
//! server ([`crate::server`]) bounds the time.

pub use spiderpool_plugin_support::http::{
    DeadlineReader, HttpError, Limits, MessageReader, Request, Response, encode_response,
    percent_decode, reason_phrase,
};

/// Largest request head accepted.
pub const MAX_HEAD: usize = Limits::SERVER.max_head;
/// Largest request body accepted (the API's bodies are a few hundred bytes).
pub const MAX_BODY: usize = Limits::SERVER.max_body;
