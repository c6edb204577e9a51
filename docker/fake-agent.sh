#!/bin/bash
# A stand-in for a coding agent, for shed's tests: it draws the screens a
# real agent draws (Claude Code's busy line and permission menu, Codex's
# prompt), rings the bell, reports through shed's pane options, and exits
# with a chosen status. The test image installs it under each agent's name
# in /opt/fake-agents; the name it is run as picks the screens.
#
# Usage: NAME STEP...   where STEP is one of
#   busy:SECS         the agent's busy line, redrawn like a spinner, for SECS
#   busy              the busy line until a line of input arrives
#   menu              a permission menu; waits for a line of input
#   prompt            the agent's idle prompt; waits for a line of input
#   bell              rings the terminal bell; waits for a line of input
#   report:STATE      tmux set-option -p @shed_state STATE
#   resume-id:ID      tmux set-option -p @shed_resume_id ID
#   record            appends "NAME ARGS" to $FAKE_AGENT_LOG (default
#                     /tmp/fake-agent.log), so a test can see how it was run
#   print:TEXT        prints TEXT and a newline
#   exit:N            exits with status N
# With no STEP left it shows its prompt and waits, like an agent would.
set -u

name=${0##*/}
all_args="$*"

busy_line() {
    case $name in
        codex) printf '\r\033[K• Working (%ss • esc to interrupt)' "$1" ;;
        *) printf '\r\033[K%s Thinking… (%ss · ↑ 1.2k tokens · esc to interrupt)' "$2" "$1" ;;
    esac
}

busy() {
    local secs=$1 frames=('·' '✢' '✳' '✶' '✻' '✽') i=0 start=$SECONDS line
    while :; do
        busy_line $((SECONDS - start)) "${frames[i % 6]}"
        i=$((i + 1))
        if [[ $secs == until-input ]]; then
            # Not `read -t 0.2`: a line that arrives as its timer runs out
            # is consumed and reported as a timeout, so the agent would
            # miss its input. `-t 0` only looks.
            if read -r -t 0; then
                read -r line
                break
            fi
            sleep 0.2
        else
            ((SECONDS - start >= secs)) && break
            read -r -t 0.2 line
        fi
    done
    printf '\r\033[K'
}

menu() {
    case $name in
        codex)
            printf '\nAllow command?\n\n  $ rm -rf build\n\n› 1. Yes, proceed\n  2. No, and tell Codex what to do differently (esc)\n'
            ;;
        *)
            printf '\n╭──────────────────────────────────────────────────────────╮\n'
            printf '│ Bash command                                             │\n'
            printf '│                                                          │\n'
            printf '│   rm -rf build                                           │\n'
            printf '│   Remove the build directory                             │\n'
            printf '│                                                          │\n'
            printf '│ Do you want to proceed?                                  │\n'
            printf '│ ❯ 1. Yes                                                 │\n'
            printf '│   2. Yes, and don'"'"'t ask again for rm commands          │\n'
            printf '│   3. No, and tell Claude what to do differently (esc)    │\n'
            printf '╰──────────────────────────────────────────────────────────╯\n'
            ;;
    esac
    read -r _
    # Like the real agents, take the answered dialog off the screen.
    printf '\033[H\033[2J'
}

prompt() {
    case $name in
        codex) printf '\n› Ask Codex to do anything\n\n  ⏎ send   ⌃J newline   ⌃T transcript   ⌃C quit\n' ;;
        *)
            printf '\n╭──────────────────────────────────────────────────────────╮\n'
            printf '│ >                                                        │\n'
            printf '╰──────────────────────────────────────────────────────────╯\n'
            printf '  ? for shortcuts\n'
            ;;
    esac
    read -r _
}

for step in "$@"; do
    case $step in
        busy) busy until-input ;;
        busy:*) busy "${step#busy:}" ;;
        menu) menu ;;
        prompt) prompt ;;
        bell) printf 'needs your input\a\n'; read -r _ ;;
        report:*) tmux set-option -p @shed_state "${step#report:}" ;;
        resume-id:*) tmux set-option -p @shed_resume_id "${step#resume-id:}" ;;
        record) printf '%s %s\n' "$name" "$all_args" >>"${FAKE_AGENT_LOG:-/tmp/fake-agent.log}" ;;
        print:*) printf '%s\n' "${step#print:}" ;;
        exit:*) exit "${step#exit:}" ;;
        *) echo "fake-agent: unknown step: $step" >&2; exit 2 ;;
    esac
done
while :; do prompt; done
