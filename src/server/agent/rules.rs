//! Screen rules, shipped as versioned data: which command is which agent,
//! and per agent the screen patterns that mean working or waiting.
//!
//! The data is `rules.toml`, embedded in the binary; the server config can
//! replace, disable or add rules (`[screen_rules]`), which marks the version
//! `+local`. Patterns are compiled once, with the `regex` crate, whose
//! matching is linear in the input whatever the pattern (no backtracking),
//! so a hostile override cannot make a screen cost more than its length.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use serde::Deserialize;

use crate::api::agent::{AgentKind, AgentState};

/// The embedded rules data.
const BUILTIN: &str = include_str!("rules.toml");

/// Most rules in force, built-in and configured together.
pub const MAX_RULES: usize = 256;
/// Most patterns one rule may have.
pub const MAX_PATTERNS_PER_RULE: usize = 16;
/// Longest pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Most memory one compiled rule may take (the regex crate's size limit).
pub const MAX_COMPILED_RULE_BYTES: usize = 1 << 20;
/// Most screen lines looked at (the bottom ones): a pane's visible screen is
/// far smaller; this bounds what a caller passing more can cost.
pub const MAX_SCREEN_LINES: usize = 500;
/// Most lines an input box may span, counted from its input line.
pub const MAX_PROMPT_BOX_LINES: usize = 50;
/// Longest matched line reported, in characters.
pub const MAX_MATCH_LINE_CHARS: usize = 200;
/// Longest conversation id `resume_command` accepts, in bytes.
pub const MAX_RESUME_ID_LEN: usize = 256;
/// Longest rule name, in bytes.
pub const MAX_RULE_NAME_LEN: usize = 64;

/// Words after an interpreter that are its sub-commands (`uv run aider`,
/// `deno run npm:...`), not the program it runs.
const INTERPRETER_SUBCOMMANDS: [&str; 4] = ["run", "x", "exec", "tool"];

/// A screen rule that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenMatch {
    /// The state the rule means.
    pub state: AgentState,
    /// `agent/name`, e.g. `claude/permission-menu`.
    pub rule: String,
    /// The rules data's version.
    pub version: String,
    /// The screen line that matched.
    pub line: String,
}

/// Why rules could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("screen rules: {0}")]
pub struct RulesError(pub String);

/// Which lines of the screen a rule looks at, relative to the agent's input
/// box (the whole screen when no box is visible).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Region {
    // The values index `ScreenView::non_empty`.
    /// Every line.
    #[default]
    Screen = 0,
    /// The lines above the input box.
    AbovePrompt = 1,
    /// The lines below the input box.
    BelowPrompt = 2,
    /// Every line but the input box's, so typed text never fakes a state.
    OutsidePrompt = 3,
}

/// One rule as written in the data or the server config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The agent (required in the server config; implied in the data).
    #[serde(default)]
    pub agent: Option<String>,
    /// Unique within the agent.
    pub name: String,
    /// `working`, `waiting` or `idle` (may be left out to disable a rule).
    #[serde(default)]
    pub state: Option<String>,
    /// Regular expressions; any matching one line fires the rule.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Which lines it looks at.
    #[serde(default)]
    pub region: Region,
    /// Only the region's last N non-empty lines.
    #[serde(default)]
    pub last: Option<usize>,
    /// `false` removes the built-in rule of the same agent and name.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// The server config's `[screen_rules]` table: rules that replace (same
/// agent and name), disable (`enabled = false`) or add to the built-in ones.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScreenRulesConfig {
    /// A TOML file of `[[rule]]` tables, applied before `rule`.
    pub file: Option<PathBuf>,
    /// Rules given inline, `[[screen_rules.rule]]`.
    pub rule: Vec<RuleSpec>,
}

/// A rules file given by `screen_rules.file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesData {
    version: String,
    #[serde(default)]
    interpreters: Vec<String>,
    agents: BTreeMap<String, AgentData>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentData {
    commands: Vec<String>,
    #[serde(default)]
    resume: Option<String>,
    #[serde(default)]
    prompt: Option<PromptData>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptData {
    #[serde(default)]
    top: Option<String>,
    start: String,
    #[serde(default)]
    end: Option<String>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    /// `agent/name`.
    id: String,
    state: AgentState,
    regex: Regex,
    region: Region,
    last: Option<usize>,
}

#[derive(Debug, Clone)]
struct Prompt {
    top: Option<Regex>,
    start: Regex,
    end: Option<Regex>,
}

#[derive(Debug, Clone)]
struct Agent {
    kind: AgentKind,
    commands: Vec<String>,
    resume: Option<String>,
    prompt: Option<Prompt>,
    /// Waiting rules first, then working, then idle.
    rules: Vec<Rule>,
}

/// The rules in force: the embedded file, extended or overridden by the
/// server config.
#[derive(Debug, Clone)]
pub struct Rules {
    version: String,
    interpreters: Vec<String>,
    agents: Vec<Agent>,
}

impl Rules {
    /// The rules embedded in the binary.
    pub fn builtin() -> Rules {
        static COMPILED: OnceLock<Rules> = OnceLock::new();
        // The embedded data is checked by a unit test, so this cannot fail
        // in a build that passed its tests; compiled once per process.
        COMPILED
            .get_or_init(|| {
                Rules::from_data(BUILTIN, &[]).expect("the embedded screen rules are valid")
            })
            .clone()
    }

    /// The embedded rules with the server config's overrides applied;
    /// reads `config.file` when set.
    pub fn with_overrides(config: &ScreenRulesConfig) -> Result<Rules, RulesError> {
        let mut overrides = Vec::new();
        if let Some(path) = &config.file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| RulesError(format!("cannot read {}: {e}", path.display())))?;
            let file: OverrideFile = toml::from_str(&text).map_err(|e| {
                RulesError(format!(
                    "{}: {}",
                    path.display(),
                    e.to_string().trim_end().replace('\n', " ")
                ))
            })?;
            overrides.extend(file.rule);
        }
        overrides.extend(config.rule.iter().cloned());
        if overrides.is_empty() {
            return Ok(Rules::builtin());
        }
        if overrides.len() > MAX_RULES {
            return Err(RulesError(format!(
                "{} configured rules; at most {MAX_RULES} are allowed",
                overrides.len()
            )));
        }
        Rules::from_data(BUILTIN, &overrides)
    }

    /// Rules from `data` (the embedded file's schema) with `overrides`
    /// applied in order.
    fn from_data(data: &str, overrides: &[RuleSpec]) -> Result<Rules, RulesError> {
        let data: RulesData = toml::from_str(data)
            .map_err(|e| RulesError(e.to_string().trim_end().replace('\n', " ")))?;
        if data.version.trim().is_empty() {
            return Err(RulesError("`version` must not be empty".into()));
        }
        let mut specs: BTreeMap<AgentKind, (AgentData, Vec<RuleSpec>)> = BTreeMap::new();
        for (name, mut agent) in data.agents {
            let kind = agent_kind(&name)?;
            let rules = std::mem::take(&mut agent.rule);
            for rule in &rules {
                if rule.agent.as_deref().is_some_and(|a| a != name) {
                    return Err(RulesError(format!(
                        "rule {name}/{} names another agent",
                        rule.name
                    )));
                }
            }
            specs.insert(kind, (agent, rules));
        }
        for spec in overrides {
            let Some(agent) = spec.agent.as_deref() else {
                return Err(RulesError(format!(
                    "rule {:?}: `agent` is missing",
                    spec.name
                )));
            };
            let kind = agent_kind(agent)?;
            let Some((_, rules)) = specs.get_mut(&kind) else {
                return Err(RulesError(format!(
                    "rule {agent}/{}: no such agent",
                    spec.name
                )));
            };
            let existing = rules.iter().position(|r| r.name == spec.name);
            match (existing, spec.enabled) {
                (Some(i), true) => rules[i] = spec.clone(),
                (Some(i), false) => {
                    rules.remove(i);
                }
                (None, true) => rules.push(spec.clone()),
                (None, false) => {
                    return Err(RulesError(format!(
                        "rule {agent}/{}: no built-in rule of that name to disable",
                        spec.name
                    )))
                }
            }
        }
        let total: usize = specs.values().map(|(_, rules)| rules.len()).sum();
        if total > MAX_RULES {
            return Err(RulesError(format!(
                "{total} rules; at most {MAX_RULES} are allowed"
            )));
        }
        let mut agents = Vec::new();
        for (kind, (data, rules)) in specs {
            agents.push(compile_agent(kind, data, &rules)?);
        }
        let version = if overrides.is_empty() {
            data.version
        } else {
            format!("{}+local", data.version)
        };
        Ok(Rules {
            version,
            interpreters: data.interpreters,
            agents,
        })
    }

    /// The version string the `reason` and `explain` name.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The agent a command line runs, e.g. `claude --resume x` or
    /// `node /usr/bin/codex`; `None` when no rule names it.
    pub fn kind_of(&self, command_line: &str) -> Option<AgentKind> {
        let mut words = command_line.split_whitespace();
        let program = basename(words.next()?);
        if let Some(kind) = self.kind_named(program) {
            return Some(kind);
        }
        if !self.is_interpreter(program) {
            return None;
        }
        for word in words {
            if word.starts_with('-') {
                continue;
            }
            // `sh -c 'claude --resume x'`: a quoted command's first word.
            let word = word.trim_start_matches(['\'', '"']);
            let name = stem(basename(word));
            if self.is_interpreter(name) || INTERPRETER_SUBCOMMANDS.contains(&name) {
                continue;
            }
            return self.kind_named(name).or_else(|| self.kind_of_package(word));
        }
        None
    }

    /// The agent whose npm package a script path lies in, e.g.
    /// `.../node_modules/@anthropic-ai/claude-code/cli.js`.
    fn kind_of_package(&self, path: &str) -> Option<AgentKind> {
        let (_, inside) = path.rsplit_once("node_modules/")?;
        inside
            .split('/')
            .find_map(|part| self.kind_named(stem(part)))
    }

    fn kind_named(&self, name: &str) -> Option<AgentKind> {
        self.agents
            .iter()
            .find(|a| a.commands.iter().any(|c| c == name))
            .map(|a| a.kind)
    }

    fn is_interpreter(&self, name: &str) -> bool {
        // `python3.12`, `node22`: the version does not change what it is.
        let bare = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        self.interpreters.iter().any(|i| i == name || i == bare)
    }

    /// The first rule of `kind` matching `screen` (the pane's visible
    /// screen, top to bottom), waiting rules before working ones.
    pub fn classify(&self, kind: AgentKind, screen: &str) -> Option<ScreenMatch> {
        let agent = self.agents.iter().find(|a| a.kind == kind)?;
        let view = ScreenView::new(screen, agent.prompt.as_ref());
        agent.rules.iter().find_map(|rule| {
            view.find(rule).map(|line| ScreenMatch {
                state: rule.state,
                rule: rule.id.clone(),
                version: self.version.clone(),
                line: clean_line(line),
            })
        })
    }

    /// The command that resumes `kind`'s conversation `id`; `None` when the
    /// agent has no resume command or the id is empty, too long or holds
    /// control characters. The id is shell-quoted.
    pub fn resume_command(&self, kind: AgentKind, id: &str) -> Option<String> {
        if id.is_empty() || id.len() > MAX_RESUME_ID_LEN || id.chars().any(char::is_control) {
            return None;
        }
        let template = self
            .agents
            .iter()
            .find(|a| a.kind == kind)?
            .resume
            .as_ref()?;
        Some(template.replace("{id}", &shell_words::quote(id)))
    }
}

fn agent_kind(name: &str) -> Result<AgentKind, RulesError> {
    AgentKind::parse(name)
        .filter(|k| k.is_agent())
        .ok_or_else(|| RulesError(format!("unknown agent {name:?}")))
}

fn compile_agent(
    kind: AgentKind,
    data: AgentData,
    specs: &[RuleSpec],
) -> Result<Agent, RulesError> {
    if data.commands.is_empty() {
        return Err(RulesError(format!("agent {kind}: `commands` is empty")));
    }
    if let Some(resume) = &data.resume {
        if !resume.contains("{id}") {
            return Err(RulesError(format!(
                "agent {kind}: `resume` must contain {{id}}"
            )));
        }
    }
    let what = |part: &str| format!("agent {kind} prompt `{part}`");
    let prompt = match &data.prompt {
        None => None,
        Some(p) => Some(Prompt {
            top: p
                .top
                .as_deref()
                .map(|t| compile(&what("top"), &[t]))
                .transpose()?,
            start: compile(&what("start"), &[p.start.as_str()])?,
            end: p
                .end
                .as_deref()
                .map(|e| compile(&what("end"), &[e]))
                .transpose()?,
        }),
    };
    let mut rules = Vec::with_capacity(specs.len());
    for spec in specs {
        rules.push(compile_rule(kind, spec)?);
    }
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i].iter().any(|r| r.id == rule.id) {
            return Err(RulesError(format!("rule {}: defined twice", rule.id)));
        }
    }
    // Stable: within a state, the data's order stands.
    rules.sort_by_key(|r| match r.state {
        AgentState::Waiting => 0,
        AgentState::Working => 1,
        _ => 2,
    });
    Ok(Agent {
        kind,
        commands: data.commands,
        resume: data.resume,
        prompt,
        rules,
    })
}

fn compile_rule(kind: AgentKind, spec: &RuleSpec) -> Result<Rule, RulesError> {
    let id = format!("{kind}/{}", spec.name);
    let name_ok = !spec.name.is_empty()
        && spec.name.len() <= MAX_RULE_NAME_LEN
        && spec
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        return Err(RulesError(format!(
            "rule {id:?}: the name must be 1-{MAX_RULE_NAME_LEN} lowercase letters, digits and '-'"
        )));
    }
    let state = match spec.state.as_deref() {
        Some("working") => AgentState::Working,
        Some("waiting") => AgentState::Waiting,
        Some("idle") => AgentState::Idle,
        Some(other) => {
            return Err(RulesError(format!(
                "rule {id}: state {other:?} is not working, waiting or idle"
            )))
        }
        None => return Err(RulesError(format!("rule {id}: `state` is missing"))),
    };
    if spec.patterns.is_empty() || spec.patterns.len() > MAX_PATTERNS_PER_RULE {
        return Err(RulesError(format!(
            "rule {id}: give 1 to {MAX_PATTERNS_PER_RULE} patterns"
        )));
    }
    if spec.last.is_some_and(|n| n == 0 || n > MAX_SCREEN_LINES) {
        return Err(RulesError(format!(
            "rule {id}: `last` must be between 1 and {MAX_SCREEN_LINES}"
        )));
    }
    let patterns: Vec<&str> = spec.patterns.iter().map(String::as_str).collect();
    let regex = compile(&format!("rule {id}"), &patterns)?;
    Ok(Rule {
        id,
        state,
        regex,
        region: spec.region,
        last: spec.last,
    })
}

/// One regex matching any of `patterns`, each checked on its own first so
/// that an error names the pattern.
fn compile(what: &str, patterns: &[&str]) -> Result<Regex, RulesError> {
    let build = |pattern: &str| {
        RegexBuilder::new(pattern)
            .size_limit(MAX_COMPILED_RULE_BYTES)
            .build()
    };
    for pattern in patterns {
        if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
            return Err(RulesError(format!(
                "{what}: pattern {pattern:?} must be 1 to {MAX_PATTERN_LEN} bytes"
            )));
        }
        build(pattern).map_err(|e| {
            let message = e.to_string().replace('\n', " ");
            RulesError(format!("{what}: bad pattern {pattern:?}: {message}"))
        })?;
    }
    let joined = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    build(&joined).map_err(|e| RulesError(format!("{what}: {}", e.to_string().replace('\n', " "))))
}

/// The last path component.
fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// A file name without its extension(s): `codex.js` is `codex`.
fn stem(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// A matched line as reported: trimmed, no control characters, bounded.
fn clean_line(line: &str) -> String {
    let visible: String = line.chars().filter(|c| !c.is_control()).collect();
    visible.trim().chars().take(MAX_MATCH_LINE_CHARS).collect()
}

/// A screen's lines and where its input box is, found in one pass so each
/// rule only re-reads the lines (no per-call allocation).
struct ScreenView<'a> {
    screen: &'a str,
    /// Leading lines skipped to keep to `MAX_SCREEN_LINES`.
    skip: usize,
    /// The input box's first and last line, borders included (indices
    /// after `skip`).
    prompt: Option<(usize, usize)>,
    /// Non-empty lines per region, in `Region` order.
    non_empty: [usize; 4],
}

impl<'a> ScreenView<'a> {
    fn new(screen: &'a str, prompt: Option<&Prompt>) -> ScreenView<'a> {
        let total = screen.lines().count();
        let skip = total.saturating_sub(MAX_SCREEN_LINES);
        let mut view = ScreenView {
            screen,
            skip,
            prompt: None,
            non_empty: [0; 4],
        };
        if let Some(prompt) = prompt {
            // The box's input line, and its first line: the top border
            // when the agent has one.
            let mut found = None;
            let mut previous = None;
            for (i, line) in view.lines() {
                if prompt.start.is_match(line) {
                    match (&prompt.top, previous) {
                        (None, _) => found = Some((i, i)),
                        (Some(top), Some(above)) if top.is_match(above) => found = Some((i, i - 1)),
                        _ => {}
                    }
                }
                previous = Some(line);
            }
            view.prompt = found.map(|(start, first)| {
                let end = match &prompt.end {
                    None => start,
                    Some(end) => view
                        .lines()
                        .skip(start + 1)
                        .take(MAX_PROMPT_BOX_LINES)
                        .find(|(_, line)| end.is_match(line))
                        .map_or(total - skip - 1, |(i, _)| i),
                };
                (first, end)
            });
        }
        for (i, line) in view.lines() {
            if line.trim().is_empty() {
                continue;
            }
            for region in REGIONS {
                if view.contains(region, i) {
                    view.non_empty[region as usize] += 1;
                }
            }
        }
        view
    }

    fn lines(&self) -> impl Iterator<Item = (usize, &'a str)> {
        self.screen.lines().skip(self.skip).enumerate()
    }

    fn contains(&self, region: Region, i: usize) -> bool {
        match (region, self.prompt) {
            (Region::Screen, _) | (_, None) => true,
            (Region::AbovePrompt, Some((start, _))) => i < start,
            (Region::BelowPrompt, Some((_, end))) => i > end,
            (Region::OutsidePrompt, Some((start, end))) => i < start || i > end,
        }
    }

    /// The first line of `rule`'s region that it matches.
    fn find(&self, rule: &Rule) -> Option<&'a str> {
        let count = self.non_empty[rule.region as usize];
        let first = rule.last.map_or(0, |n| count.saturating_sub(n));
        let mut ordinal = 0;
        for (i, line) in self.lines() {
            if line.trim().is_empty() || !self.contains(rule.region, i) {
                continue;
            }
            ordinal += 1;
            if ordinal > first && rule.regex.is_match(line) {
                return Some(line);
            }
        }
        None
    }
}

const REGIONS: [Region; 4] = [
    Region::Screen,
    Region::AbovePrompt,
    Region::BelowPrompt,
    Region::OutsidePrompt,
];

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/screens");

    /// One test per screen fixture: `name, file, kind, expected state and
    /// rule` (`None` when no rule may match). Every file in the corpus must
    /// be listed (see `every_fixture_has_a_test`).
    macro_rules! fixtures {
        ($($test:ident: $file:literal => $kind:ident, $expect:expr;)*) => {
            const LISTED: &[&str] = &[$($file),*];
            $(
                #[test]
                fn $test() {
                    let screen = include_str!(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/tests/fixtures/screens/",
                        $file
                    ));
                    let got = Rules::builtin()
                        .classify(AgentKind::$kind, screen)
                        .map(|m| (m.state, m.rule));
                    let want: Option<(AgentState, &str)> = $expect;
                    assert_eq!(
                        got,
                        want.map(|(s, r)| (s, r.to_string())),
                        "fixture {}",
                        $file
                    );
                }
            )*
        };
    }

    use AgentState::{Idle, Waiting, Working};

    fixtures! {
        fixture_claude_working: "claude-working.txt" => Claude, Some((Working, "claude/busy-line"));
        fixture_claude_working_ruled_todos: "claude-working-ruled-todos.txt" => Claude, Some((Working, "claude/busy-line"));
        fixture_claude_waiting_ruled_menu: "claude-waiting-ruled-menu.txt" => Claude, Some((Waiting, "claude/permission-menu"));
        fixture_claude_working_spinner: "claude-working-spinner.txt" => Claude, Some((Working, "claude/spinner"));
        fixture_claude_working_fake: "claude-working-fake.txt" => Claude, Some((Working, "claude/busy-line"));
        fixture_claude_working_fake_after_prompt: "claude-working-fake-after-prompt.txt" => Claude, Some((Working, "claude/busy-line"));
        fixture_claude_waiting_permission: "claude-waiting-permission.txt" => Claude, Some((Waiting, "claude/permission-menu"));
        fixture_claude_waiting_question: "claude-waiting-question.txt" => Claude, Some((Waiting, "claude/question"));
        fixture_claude_waiting_plan: "claude-waiting-plan.txt" => Claude, Some((Waiting, "claude/question"));
        fixture_claude_waiting_fake_menu: "claude-waiting-fake-menu.txt" => Claude, Some((Waiting, "claude/permission-menu"));
        fixture_claude_idle: "claude-idle.txt" => Claude, Some((Idle, "claude/prompt-box"));
        fixture_claude_idle_fake: "claude-idle-fake.txt" => Claude, Some((Idle, "claude/prompt-box"));
        fixture_claude_idle_typed_hint: "claude-idle-typed-hint.txt" => Claude, Some((Idle, "claude/prompt-box"));
        fixture_claude_idle_ruled_typed: "claude-idle-ruled-typed.txt" => Claude, Some((Idle, "claude/prompt-box"));
        fixture_codex_working: "codex-working.txt" => Codex, Some((Working, "codex/busy-line"));
        fixture_codex_working_fake: "codex-working-fake.txt" => Codex, Some((Working, "codex/busy-line"));
        fixture_codex_waiting_approval: "codex-waiting-approval.txt" => Codex, Some((Waiting, "codex/approval"));
        fixture_codex_waiting_fake: "codex-waiting-fake.txt" => Codex, Some((Waiting, "codex/approval"));
        fixture_codex_idle: "codex-idle.txt" => Codex, Some((Idle, "codex/prompt"));
        fixture_codex_idle_fake: "codex-idle-fake.txt" => Codex, Some((Idle, "codex/prompt"));
        fixture_codex_idle_typed_hint: "codex-idle-typed-hint.txt" => Codex, Some((Idle, "codex/prompt"));
        fixture_opencode_working: "opencode-working.txt" => Opencode, Some((Working, "opencode/busy-hint"));
        fixture_opencode_waiting_permission: "opencode-waiting-permission.txt" => Opencode, Some((Waiting, "opencode/permission"));
        fixture_aider_waiting_confirm: "aider-waiting-confirm.txt" => Aider, Some((Waiting, "aider/confirm"));
        fixture_aider_waiting_add_file: "aider-waiting-add-file.txt" => Aider, Some((Waiting, "aider/confirm"));
        fixture_aider_idle: "aider-idle.txt" => Aider, Some((Idle, "aider/prompt"));
        fixture_gemini_working: "gemini-working.txt" => Gemini, Some((Working, "gemini/busy-line"));
        fixture_gemini_waiting_confirm: "gemini-waiting-confirm.txt" => Gemini, Some((Waiting, "gemini/confirmation"));
        fixture_gemini_idle: "gemini-idle.txt" => Gemini, Some((Idle, "gemini/prompt"));
    }

    #[test]
    fn every_fixture_has_a_test() {
        let mut files: Vec<String> = std::fs::read_dir(FIXTURES)
            .expect("the fixture directory")
            .map(|e| {
                e.expect("a directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        files.sort();
        let mut listed: Vec<String> = LISTED.iter().map(|f| f.to_string()).collect();
        listed.sort();
        assert_eq!(
            files, listed,
            "tests/fixtures/screens and the fixtures! list differ"
        );
        for file in &files {
            let (agent, rest) = file.split_once('-').expect("agent-state[-what].txt");
            assert!(
                AgentKind::parse(agent).is_some_and(|k| k.is_agent()),
                "{file}"
            );
            let state = rest
                .trim_end_matches(".txt")
                .split('-')
                .next()
                .unwrap_or("");
            assert!(["working", "waiting", "idle"].contains(&state), "{file}");
        }
    }

    #[test]
    fn the_builtin_data_loads_with_its_version() {
        let rules = Rules::builtin();
        assert_eq!(rules.version(), "1");
        for kind in AgentKind::ALL.into_iter().filter(|k| k.is_agent()) {
            assert!(
                rules.agents.iter().any(|a| a.kind == kind),
                "{kind} has no entry"
            );
        }
    }

    #[test]
    fn a_match_reports_the_rule_version_and_a_clean_line() {
        let screen = "history\n\u{1b}  ✻ Thinking… (3s · esc to interrupt)\u{7}   \n";
        let m = Rules::builtin()
            .classify(AgentKind::Claude, screen)
            .unwrap();
        assert_eq!(m.state, AgentState::Working);
        assert_eq!(m.rule, "claude/busy-line");
        assert_eq!(m.version, "1");
        assert_eq!(m.line, "✻ Thinking… (3s · esc to interrupt)");
        let long = format!("esc to interrupt {}", "x".repeat(5000));
        let m = Rules::builtin().classify(AgentKind::Claude, &long).unwrap();
        assert_eq!(m.line.chars().count(), MAX_MATCH_LINE_CHARS);
    }

    #[test]
    fn waiting_rules_win_over_working_ones() {
        // A busy line and a permission menu on one screen: the menu is what
        // the user must answer.
        let screen = "✻ Thinking… (esc to interrupt)\nDo you want to proceed?\n❯ 1. Yes\n  2. No\n";
        let m = Rules::builtin()
            .classify(AgentKind::Claude, screen)
            .unwrap();
        assert_eq!(
            (m.state, m.rule.as_str()),
            (Waiting, "claude/permission-menu")
        );
    }

    #[test]
    fn text_typed_in_the_input_box_does_not_count() {
        let screen = "⏺ Done.\n╭────╮\n│ > esc to interrupt\n│   Do you want to go?\n╰────╯\n  ? for shortcuts\n";
        let m = Rules::builtin()
            .classify(AgentKind::Claude, screen)
            .unwrap();
        assert_eq!((m.state, m.rule.as_str()), (Idle, "claude/prompt-box"));
    }

    #[test]
    fn shells_and_other_programs_have_no_rules() {
        let rules = Rules::builtin();
        for kind in [AgentKind::Shell, AgentKind::Other] {
            assert_eq!(rules.classify(kind, "esc to interrupt\n❯ 1. Yes\n"), None);
            assert_eq!(rules.resume_command(kind, "abc"), None);
        }
        assert_eq!(rules.classify(AgentKind::Claude, ""), None);
        assert_eq!(rules.classify(AgentKind::Claude, "$ ls\nsrc tests\n"), None);
    }

    #[test]
    fn only_the_bottom_of_a_huge_screen_is_read() {
        let mut screen = "esc to interrupt\n".to_string();
        screen.push_str(&"filler\n".repeat(MAX_SCREEN_LINES));
        assert_eq!(Rules::builtin().classify(AgentKind::Claude, &screen), None);
        screen.push_str("esc to interrupt\n");
        assert!(Rules::builtin()
            .classify(AgentKind::Claude, &screen)
            .is_some());
    }

    #[test]
    fn kind_of_reads_the_program_and_what_interpreters_run() {
        let rules = Rules::builtin();
        let cases: &[(&str, Option<AgentKind>)] = &[
            ("claude", Some(AgentKind::Claude)),
            ("claude --resume 0b1c", Some(AgentKind::Claude)),
            ("/usr/local/bin/codex --full-auto", Some(AgentKind::Codex)),
            ("opencode", Some(AgentKind::Opencode)),
            ("aider --model sonnet", Some(AgentKind::Aider)),
            ("gemini", Some(AgentKind::Gemini)),
            (
                "node /usr/lib/node_modules/@openai/codex/bin/codex.js",
                Some(AgentKind::Codex),
            ),
            ("node --no-warnings /usr/bin/codex", Some(AgentKind::Codex)),
            (
                "node /usr/local/lib/node_modules/@anthropic-ai/claude-code/cli.js",
                Some(AgentKind::Claude),
            ),
            (
                "node /usr/lib/node_modules/@google/gemini-cli/dist/index.js",
                Some(AgentKind::Gemini),
            ),
            ("bun /home/u/.bun/bin/opencode", Some(AgentKind::Opencode)),
            ("python -m aider", Some(AgentKind::Aider)),
            ("python3.12 -m aider --yes", Some(AgentKind::Aider)),
            (
                "/usr/bin/python3 /home/u/.local/bin/aider",
                Some(AgentKind::Aider),
            ),
            ("uv run aider", Some(AgentKind::Aider)),
            ("npx @anthropic-ai/claude-code", Some(AgentKind::Claude)),
            ("npx -y @openai/codex", Some(AgentKind::Codex)),
            (
                "deno run -A npm:@google/gemini-cli",
                Some(AgentKind::Gemini),
            ),
            // How shed runs a session's command, and a script's pane.
            (
                "/bin/sh -c -- /opt/fake-agents/claude busy:3",
                Some(AgentKind::Claude),
            ),
            ("bash /opt/fake-agents/codex prompt", Some(AgentKind::Codex)),
            ("sh -c 'exec claude --resume x'", Some(AgentKind::Claude)),
            ("env FOO=1 codex", None),
            ("sh -c ls", None),
            // Not agents: shells, other programs, other scripts.
            ("bash", None),
            ("-bash", None),
            ("vim claude.md", None),
            ("node server.js codex", None),
            ("node /home/claude/app/server.js", None),
            ("python", None),
            ("python -m http.server", None),
            ("", None),
            ("   ", None),
        ];
        for (line, want) in cases {
            assert_eq!(rules.kind_of(line), *want, "{line:?}");
        }
    }

    #[test]
    fn resume_commands_per_agent() {
        let rules = Rules::builtin();
        let id = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
        assert_eq!(
            rules.resume_command(AgentKind::Claude, id).as_deref(),
            Some("claude --resume 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
        );
        assert_eq!(
            rules.resume_command(AgentKind::Codex, id).as_deref(),
            Some("codex resume 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
        );
        assert_eq!(
            rules
                .resume_command(AgentKind::Opencode, "ses_12ab")
                .as_deref(),
            Some("opencode --session ses_12ab")
        );
        assert_eq!(
            rules.resume_command(AgentKind::Gemini, id).as_deref(),
            Some("gemini --resume 0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
        );
        // Aider has no conversation ids.
        assert_eq!(rules.resume_command(AgentKind::Aider, id), None);
        // An id is one shell word, whatever an agent reported.
        assert_eq!(
            rules
                .resume_command(AgentKind::Claude, "x; rm -rf ~")
                .as_deref(),
            Some("claude --resume 'x; rm -rf ~'")
        );
        for bad in ["", "a\nb", "a\u{1b}[2J", &"x".repeat(MAX_RESUME_ID_LEN + 1)] {
            assert_eq!(
                rules.resume_command(AgentKind::Claude, bad),
                None,
                "{bad:?}"
            );
        }
    }

    fn with(toml_rules: &str) -> Result<Rules, RulesError> {
        let config: ScreenRulesConfig = toml::from_str(toml_rules).expect("test config parses");
        Rules::with_overrides(&config)
    }

    #[test]
    fn an_override_replaces_the_builtin_rule_of_the_same_name() {
        let rules = with(
            r#"
            [[rule]]
            agent = "claude"
            name = "busy-line"
            state = "working"
            patterns = ['\bpress esc\b']
            region = "outside-prompt"
            "#,
        )
        .unwrap();
        assert_eq!(rules.version(), "1+local");
        let m = rules
            .classify(AgentKind::Claude, "✻ Thinking (press esc)\n")
            .unwrap();
        assert_eq!(
            (m.rule.as_str(), m.version.as_str()),
            ("claude/busy-line", "1+local")
        );
        // The old pattern is gone with the rule it belonged to.
        assert_eq!(
            rules.classify(AgentKind::Claude, "(esc to interrupt)\n"),
            None
        );
    }

    #[test]
    fn an_override_disables_a_builtin_rule() {
        let rules = with(
            r#"
            [[rule]]
            agent = "codex"
            name = "busy-line"
            enabled = false
            "#,
        )
        .unwrap();
        assert_eq!(
            rules.classify(AgentKind::Codex, "• Working (2s • esc to interrupt)\n"),
            None
        );
        assert!(Rules::builtin()
            .classify(AgentKind::Codex, "• Working (2s • esc to interrupt)\n")
            .is_some());
    }

    #[test]
    fn an_override_adds_a_rule_in_its_state_order() {
        let rules = with(
            r#"
            [[rule]]
            agent = "aider"
            name = "waiting-for-model"
            state = "working"
            patterns = ['^Waiting for \S+']
            last = 3
            "#,
        )
        .unwrap();
        let m = rules
            .classify(AgentKind::Aider, "> fix it\n\nWaiting for sonnet\n")
            .unwrap();
        assert_eq!(
            (m.state, m.rule.as_str()),
            (Working, "aider/waiting-for-model")
        );
        // Waiting rules still come first.
        let m = rules
            .classify(
                AgentKind::Aider,
                "Waiting for sonnet\nRun shell command? (Y)es/(N)o [Yes]:\n",
            )
            .unwrap();
        assert_eq!(m.rule, "aider/confirm");
    }

    #[test]
    fn regions_split_the_screen_at_the_input_box() {
        // Each rule matches `mark N`; which one is found shows the region.
        let screen = "mark 1\nmark 2\n\n╭───╮\n│ > mark 3\n│   mark 4\n╰───╯\nmark 5\n\nmark 6\n";
        let first_mark = |region: &str, last: &str| {
            let rules = with(&format!(
                "[[rule]]\nagent = \"claude\"\nname = \"mark\"\nstate = \"waiting\"\n\
                 patterns = ['mark \\d']\nregion = \"{region}\"\n{last}"
            ))
            .unwrap();
            rules.classify(AgentKind::Claude, screen).map(|m| m.line)
        };
        let mark = |n: u8| Some(format!("mark {n}"));
        assert_eq!(first_mark("screen", ""), mark(1));
        assert_eq!(first_mark("screen", "last = 2"), mark(5));
        assert_eq!(first_mark("above-prompt", ""), mark(1));
        assert_eq!(first_mark("above-prompt", "last = 1"), mark(2));
        assert_eq!(first_mark("below-prompt", ""), mark(5));
        assert_eq!(first_mark("below-prompt", "last = 1"), mark(6));
        assert_eq!(first_mark("outside-prompt", "last = 3"), mark(2));
        // Without a box every region is the whole screen.
        let no_box = "mark 7\nmark 8\n";
        let rules = with(
            "[[rule]]\nagent = \"claude\"\nname = \"mark\"\nstate = \"waiting\"\n\
             patterns = ['mark \\d']\nregion = \"below-prompt\"\nlast = 1",
        )
        .unwrap();
        assert_eq!(
            rules.classify(AgentKind::Claude, no_box).map(|m| m.line),
            mark(8)
        );
    }

    #[test]
    fn overrides_come_from_a_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        std::fs::write(
            &path,
            "[[rule]]\nagent = \"gemini\"\nname = \"busy-line\"\nenabled = false\n",
        )
        .unwrap();
        let config = ScreenRulesConfig {
            file: Some(path),
            rule: Vec::new(),
        };
        let rules = Rules::with_overrides(&config).unwrap();
        assert_eq!(rules.version(), "1+local");
        assert_eq!(
            rules.classify(AgentKind::Gemini, "⠏ Thinking (esc to cancel, 3s)\n"),
            None
        );
    }

    #[test]
    fn bad_overrides_are_refused_naming_the_rule() {
        let cases = [
            (
                "[[rule]]\nagent = \"claude\"\nname = \"mine\"\nstate = \"working\"\npatterns = ['(unclosed']",
                "rule claude/mine: bad pattern",
            ),
            (
                "[[rule]]\nagent = \"claude\"\nname = \"mine\"\nstate = \"busy\"\npatterns = ['x']",
                "rule claude/mine: state \"busy\"",
            ),
            ("[[rule]]\nagent = \"claude\"\nname = \"mine\"\nstate = \"idle\"", "rule claude/mine: give 1 to"),
            ("[[rule]]\nagent = \"claude\"\nname = \"mine\"\npatterns = ['x']", "rule claude/mine: `state` is missing"),
            ("[[rule]]\nagent = \"vim\"\nname = \"x\"\nstate = \"idle\"\npatterns = ['x']", "unknown agent \"vim\""),
            ("[[rule]]\nagent = \"shell\"\nname = \"x\"\nstate = \"idle\"\npatterns = ['x']", "unknown agent \"shell\""),
            ("[[rule]]\nname = \"x\"\nstate = \"idle\"\npatterns = ['x']", "`agent` is missing"),
            ("[[rule]]\nagent = \"codex\"\nname = \"nope\"\nenabled = false", "rule codex/nope: no built-in rule"),
            ("[[rule]]\nagent = \"codex\"\nname = \"Bad Name\"\nstate = \"idle\"\npatterns = ['x']", "the name must be"),
            ("[[rule]]\nagent = \"codex\"\nname = \"x\"\nstate = \"idle\"\npatterns = ['x']\nlast = 0", "rule codex/x: `last`"),
            // Bounded sizes: a huge pattern and a pattern that compiles too big.
            (
                &format!("[[rule]]\nagent = \"codex\"\nname = \"x\"\nstate = \"idle\"\npatterns = ['{}']", "a".repeat(MAX_PATTERN_LEN + 1)),
                "rule codex/x: pattern",
            ),
            (
                "[[rule]]\nagent = \"codex\"\nname = \"x\"\nstate = \"idle\"\npatterns = ['\\w{1000}\\w{1000}']",
                "rule codex/x: bad pattern",
            ),
        ];
        for (config, want) in cases {
            let err = with(config).expect_err(config).0;
            assert!(
                err.contains(want),
                "{config}\n  gave {err:?}\n  want {want:?}"
            );
        }
        let many: String = (0..=MAX_RULES)
            .map(|i| format!("[[rule]]\nagent = \"codex\"\nname = \"r{i}\"\nstate = \"idle\"\npatterns = ['x']\n"))
            .collect();
        assert!(
            with(&many)
                .unwrap_err()
                .0
                .contains("at most 256 are allowed"),
            "rule count bound"
        );
        // The bound counts the built-in rules too.
        let builtin: usize = Rules::builtin().agents.iter().map(|a| a.rules.len()).sum();
        let fill: String = (0..=MAX_RULES - builtin)
            .map(|i| format!("[[rule]]\nagent = \"codex\"\nname = \"r{i}\"\nstate = \"idle\"\npatterns = ['x']\n"))
            .collect();
        let err = with(&fill).unwrap_err().0;
        assert!(
            err.contains(&format!("{} rules; at most 256", MAX_RULES + 1)),
            "{err}"
        );
        let too_many_patterns = format!(
            "[[rule]]\nagent = \"codex\"\nname = \"x\"\nstate = \"idle\"\npatterns = [{}]",
            vec!["'x'"; MAX_PATTERNS_PER_RULE + 1].join(",")
        );
        assert!(with(&too_many_patterns).is_err());
    }

    #[test]
    fn classifying_a_busy_screen_is_cheap() {
        // 100 busy panes a second must cost little: time 1000 screens and
        // allow a very generous budget, so this only fails when something
        // (recompiling, quadratic scans) goes badly wrong.
        let rules = Rules::builtin();
        let screen = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/screens/claude-idle.txt"
        ));
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            assert!(rules.classify(AgentKind::Claude, screen).is_some());
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed < std::time::Duration::from_secs(2),
            "1000 screens took {elapsed:?}"
        );
    }
}
