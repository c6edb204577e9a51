//! shed: persistent Docker workspaces for long-running coding agents.
//!
//! `shed-server` ([`server`]) runs on each host and serves an HTTP API over
//! sheds; the `shed` CLI ([`client`]) talks to one or more servers. Both
//! share the wire types in [`api`].

#![warn(missing_docs)]

pub mod api;
pub mod client;
pub mod files;
pub mod server;
pub mod web;
