//! The shed CLI.
