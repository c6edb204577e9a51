#!/bin/sh
# shed-managed-file: installed by `shed hooks install`; rewritten by the next install.
#
# shed-hook: tells shed what the coding agent in this tmux pane is doing, by
# setting the pane's user options (@shed_state, @shed_agent, @shed_resume_id)
# that shed-server reads. Needs only sh, tmux and sed. See docs/hooks.md.
#
#   shed-hook state working|waiting|idle|none   set (or, with none, clear) @shed_state
#   shed-hook claude|codex|gemini EVENT          map a hook event to a state; the
#                                                event's JSON is read on stdin
#
# Called from an agent's hooks it never fails and never prints: a broken hook
# must not break the agent. Outside tmux it does nothing.

# The most bytes of an id copied from the hook JSON; longer ids are ignored.
max_id=128

fail() {
    if [ "$strict" = 1 ]; then
        printf 'shed-hook: %s\n' "$1" >&2
        exit 1
    fi
    exit 0
}

# Sets pane option $1 to $2 on this pane ($2 empty: unsets it).
pane_set() {
    if [ -n "$2" ]; then
        tmux set-option -p -t "$TMUX_PANE" "$1" "$2" >/dev/null 2>&1 || fail "tmux set-option $1 failed"
    else
        tmux set-option -p -u -t "$TMUX_PANE" "$1" >/dev/null 2>&1 || fail "tmux set-option -u $1 failed"
    fi
}

# Prints the value of string field $1 of the JSON on stdin, only when it is
# made of [A-Za-z0-9._-] and at most $max_id bytes; prints nothing otherwise.
json_id() {
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\\([A-Za-z0-9._-]\\{1,$max_id\\}\\)\".*/\\1/p" | sed -n 1p
}

strict=0
[ "${1:-}" = state ] && strict=1

# Not in tmux: nothing to report to.
case "${TMUX:-}:${TMUX_PANE:-}" in
    :* | *:) exit 0 ;;
esac
case "$TMUX_PANE" in
    %*[!0-9]* | %) fail "TMUX_PANE is not a pane id" ;;
    %*) ;;
    *) fail "TMUX_PANE is not a pane id" ;;
esac
command -v tmux >/dev/null 2>&1 || fail "tmux is not installed"
command -v sed >/dev/null 2>&1 || fail "sed is not installed"

case "${1:-}" in
    state)
        case "${2:-}" in
            working | waiting | idle) pane_set @shed_state "$2" ;;
            none) pane_set @shed_state "" ;;
            *) fail "usage: shed-hook state working|waiting|idle|none" ;;
        esac
        ;;
    claude | codex | gemini)
        agent=$1
        case "${2:-}" in
            SessionStart)
                id=$(json_id session_id)
                pane_set @shed_agent "$agent"
                # An id that fails the check clears the previous one, now stale.
                pane_set @shed_resume_id "$id"
                pane_set @shed_state idle
                ;;
            UserPromptSubmit | PreToolUse | PostToolUse | BeforeAgent | BeforeTool | AfterTool)
                pane_set @shed_state working
                ;;
            Notification | PermissionRequest)
                pane_set @shed_state waiting
                ;;
            Stop | AfterAgent)
                pane_set @shed_state idle
                ;;
            SessionEnd)
                pane_set @shed_state ""
                ;;
            *) ;;
        esac
        # The agent may still be writing the event's JSON: take it all, so it
        # never sees a broken pipe.
        [ -t 0 ] || sed -n '' 2>/dev/null
        ;;
    *) fail "usage: shed-hook state STATE | shed-hook claude|codex|gemini EVENT" ;;
esac
exit 0
