//! The `shed` CLI: config, a typed API client, and the commands.

pub mod api_client;
pub mod cli;
pub mod commands;
pub mod config;
pub mod notify;
pub mod output;
pub mod sse;
pub mod ssh;
pub mod tls;
pub mod ui;
pub mod ui_events;
