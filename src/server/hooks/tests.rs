use super::*;

/// The hook commands of a Claude/Codex/Gemini style `hooks` object, per event.
fn commands(settings: &serde_json::Value) -> Vec<(String, String, Option<String>)> {
    let mut found = Vec::new();
    for (event, groups) in settings["hooks"].as_object().expect("a hooks object") {
        for group in groups.as_array().expect("a list of matcher groups") {
            let matcher = group["matcher"].as_str().map(str::to_string);
            for hook in group["hooks"].as_array().expect("a list of hooks") {
                assert_eq!(hook["type"], "command", "{event}");
                let command = hook["command"].as_str().expect("a command").to_string();
                found.push((event.clone(), command, matcher.clone()));
            }
        }
    }
    found
}

/// The command shed configures for `event`: the helper, and the mark as a
/// shell comment (an agent that splits the command instead of running a
/// shell passes it as extra arguments, which the helper ignores).
fn command(agent: &str, event: &str) -> String {
    format!("{HELPER_PATH} {agent} {event} # {MARKER}")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("valid JSON")
}

/// Every event in `events` calls `shed-hook AGENT EVENT`, and nothing else is called.
fn check_events(settings: &str, agent: &str, events: &[&str]) {
    let settings = json(settings);
    // No key of shed's own: an agent that checks its settings strictly could
    // skip the whole file for one it does not know.
    assert!(settings
        .as_object()
        .unwrap()
        .keys()
        .all(|k| !k.starts_with('_')));
    let found = commands(&settings);
    for event in events {
        assert!(
            found
                .iter()
                .any(|(e, c, _)| e == event && *c == command(agent, event)),
            "{agent}: no hook for {event}: {found:?}"
        );
    }
    for (event, command, _) in &found {
        assert_eq!(*command, self::command(agent, event));
        // Every event configured is one the helper maps (or deliberately ignores).
        assert!(HELPER.contains(event.as_str()), "helper ignores {event}");
    }
}

#[test]
fn claude_settings_hook_every_documented_event() {
    check_events(
        CLAUDE_SETTINGS,
        "claude",
        &[
            "SessionStart",
            "UserPromptSubmit",
            "PreToolUse",
            "Notification",
            "PermissionRequest",
            "Stop",
            "SessionEnd",
        ],
    );
    // The idle reminder (idle_prompt, after 60 s) is not "waiting".
    let found = commands(&json(CLAUDE_SETTINGS));
    let notification = found.iter().find(|(e, _, _)| e == "Notification").unwrap();
    assert_eq!(
        notification.2.as_deref(),
        Some("permission_prompt|elicitation_dialog")
    );
}

#[test]
fn codex_files_hook_every_documented_event_and_turn_hooks_on() {
    check_events(
        CODEX_HOOKS,
        "codex",
        &[
            "SessionStart",
            "UserPromptSubmit",
            "PreToolUse",
            "PermissionRequest",
            "Stop",
        ],
    );
    let config: toml::Table = toml::from_str(CODEX_CONFIG).expect("valid TOML");
    assert_eq!(config["features"]["codex_hooks"].as_bool(), Some(true));
    assert!(CODEX_CONFIG.contains(MARKER));
}

#[test]
fn gemini_defaults_hook_every_documented_event() {
    check_events(
        GEMINI_DEFAULTS,
        "gemini",
        &[
            "SessionStart",
            "BeforeAgent",
            "BeforeTool",
            "Notification",
            "AfterAgent",
            "SessionEnd",
        ],
    );
    assert_eq!(json(GEMINI_DEFAULTS)["hooksConfig"]["enabled"], true);
}

#[test]
fn every_file_is_marked_and_at_a_system_path() {
    assert!(HELPER.starts_with("#!/bin/sh\n"));
    assert!(HELPER.contains(MARKER));
    for agent in HookAgent::ALL {
        for t in targets(agent) {
            assert!(t.content.contains(MARKER), "{}", t.path);
            // Never the user's home, which may be mounted from the laptop.
            assert!(t.path.starts_with("/etc/"), "{}", t.path);
        }
    }
}

#[test]
fn the_command_passes_every_file_as_arguments() {
    let cmd = install_command(&[HookAgent::Codex]);
    assert_eq!(cmd[..2], ["/bin/sh", "-c"]);
    assert!(cmd[2].contains("for tool in tmux sed mkdir"));
    assert_eq!(cmd[4], MARKER);
    let files: Vec<&[String]> = cmd[5..].chunks(3).collect();
    assert_eq!(files.len(), 3);
    assert_eq!(files[0][0], HELPER_PATH);
    assert_eq!(files[0][1], "755");
    assert_eq!(files[0][2], HELPER);
    assert_eq!(files[1][0], "/etc/codex/hooks.json");
    assert_eq!(files[2][0], "/etc/codex/config.toml");
}

#[test]
fn chosen_dedups_and_orders() {
    assert_eq!(chosen(None), HookAgent::ALL.to_vec());
    assert_eq!(
        chosen(Some(&[
            HookAgent::Gemini,
            HookAgent::Claude,
            HookAgent::Gemini
        ])),
        vec![HookAgent::Claude, HookAgent::Gemini]
    );
}

#[test]
fn the_report_follows_the_script_and_misses_become_skips() {
    let out = "installed\t/usr/local/bin/shed-hook\n\
               skipped\t/etc/claude-code/managed-settings.json\tit exists and is not shed's\n";
    let report = parse_report("s", &[HookAgent::Claude, HookAgent::Gemini], out).unwrap();
    assert_eq!(report.helper.status, HookFileStatus::Installed);
    let claude = &report.agents[0].files[0];
    assert_eq!(claude.status, HookFileStatus::Skipped);
    assert_eq!(
        claude.reason.as_deref(),
        Some("it exists and is not shed's")
    );
    let gemini = &report.agents[1].files[0];
    assert_eq!(gemini.status, HookFileStatus::Skipped);
    assert!(gemini.reason.as_deref().unwrap().contains("did not say"));
    assert_eq!(report.skipped().len(), 2);
}

#[test]
fn a_missing_tool_is_named() {
    let err = parse_report("s", &[HookAgent::Claude], "missing\tsed\n").unwrap_err();
    match err {
        BackendError::ToolMissing { tool, shed, .. } => {
            assert_eq!(tool, "sed");
            assert_eq!(shed, "s");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn what_the_shed_answers_is_bounded() {
    let long = "x".repeat(100_000);
    let out = format!("skipped\t{HELPER_PATH}\t{long}\n");
    let report = parse_report("s", &[], &out).unwrap();
    assert_eq!(report.helper.reason.unwrap().len(), MAX_ANSWER_CHARS);
    match parse_report("s", &[], &format!("missing\t{long}\n")).unwrap_err() {
        BackendError::ToolMissing { tool, .. } => assert_eq!(tool.len(), MAX_ANSWER_CHARS),
        other => panic!("{other:?}"),
    }
}
