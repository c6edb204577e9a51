//! Attacks on shed, each reproduced against the real server (or, for the
//! CLI, against a lying fake server): hostile SSH and HTTP clients, cross-site
//! requests, a malicious API server, and text that tmux would rewrite.
//! Every test here failed before the fix it guards.

#[path = "../common/mod.rs"]
mod common;

mod client;
mod gateway;
mod http;
mod tmux;
