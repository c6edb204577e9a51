//! Agent state: which agent runs in each pane, and whether it needs its
//! user, from the agent's own reports, pane exits, screen rules, bells and
//! output activity (strongest first).

pub mod detect;
pub mod engine;
pub mod rules;
