"""`archfleet completion bash|zsh|fish`: a shell completion script, generated from archfleet's own parser.

Every command, subcommand and option comes from the argparse tree (nothing listed by hand, no dependency);
options that take a file (``-f/--fleet``, ``--profile``...) complete file names. Load it for this shell with
``source <(archfleet completion bash)`` or install it once, as each shell's section of ``--help`` says.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archfleet.commands.examples import subcommands

SHELLS = ("bash", "zsh", "fish")
FILE_METAVARS = ("FILE", "FLEET", "DIR", "PATH")


@dataclass
class Level:
    """One command level: ``path`` is the words that lead to it (``("images", "build")``)."""

    path: tuple[str, ...]
    commands: dict[str, str] = field(default_factory=dict)  # name -> help
    options: dict[str, str] = field(default_factory=dict)  # option string -> help
    file_options: list[str] = field(default_factory=list)  # options whose value is a file name
    values: list[str] = field(default_factory=list)  # a positional argument's choices (`completion bash`)
    choices: dict[str, list[str]] = field(default_factory=dict)  # option -> its choices


def takes_file(action: argparse.Action) -> bool:
    return action.type is Path or (isinstance(action.metavar, str) and action.metavar in FILE_METAVARS)


def levels(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[Level]:
    """Every level of the parser tree, the top first."""
    level = Level(path)
    found = [level]
    help_of = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            help_of.update({choice.dest: choice.help or "" for choice in action._choices_actions})
        if not action.option_strings and action.choices and not isinstance(action, argparse._SubParsersAction):
            level.values.extend(str(choice) for choice in action.choices)
        for option in action.option_strings:
            level.options[option] = action.help or ""
            if action.nargs != 0 and takes_file(action):
                level.file_options.append(option)
            if action.nargs != 0 and action.choices:
                level.choices[option] = [str(c) for c in action.choices]
    for name, sub in subcommands(parser).items():
        level.commands[name] = help_of.get(name, "")
        found.extend(levels(sub, (*path, name)))
    return found


def _case(entries: dict[str, list[str]]) -> str:
    """A POSIX ``case "$1"`` that echoes the words of each path (bash and zsh run it alike)."""
    arms = [f'        {shlex.quote(key)}) echo {shlex.quote(" ".join(words))} ;;' for key, words in entries.items()
            if words]
    return "    case \"$1\" in\n" + "\n".join(arms) + "\n    esac"


def shared_functions(tree: list[Level]) -> str:
    """Three helpers both bash and zsh scripts use: the subcommands, all words, and the file options of a path."""
    key = {id(level): " ".join(level.path) for level in tree}
    return "\n".join([
        "_archfleet_subcommands() {", _case({key[id(lv)]: list(lv.commands) for lv in tree}), "}",
        "_archfleet_words() {", _case({key[id(lv)]: [*lv.commands, *lv.values, *lv.options] for lv in tree}), "}",
        "_archfleet_file_options() {", _case({key[id(lv)]: lv.file_options for lv in tree}), "}",
    ])


BASH_BODY = r"""
_archfleet() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmdpath="" word i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        case " $(_archfleet_subcommands "$cmdpath") " in
            *" $word "*) cmdpath="${cmdpath:+$cmdpath }$word" ;;
        esac
    done
    case " $(_archfleet_file_options "$cmdpath") " in
        *" $prev "*) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    esac
    COMPREPLY=($(compgen -W "$(_archfleet_words "$cmdpath")" -- "$cur"))
}
complete -o bashdefault -o default -F _archfleet archfleet
"""

ZSH_BODY = r"""
_archfleet() {
    local cmdpath="" word i
    local -a candidates
    for ((i = 2; i < CURRENT; i++)); do
        word="${words[i]}"
        if [[ " $(_archfleet_subcommands "$cmdpath") " == *" $word "* ]]; then
            cmdpath="${cmdpath:+$cmdpath }$word"
        fi
    done
    if [[ " $(_archfleet_file_options "$cmdpath") " == *" ${words[CURRENT-1]} "* ]]; then
        _files
        return
    fi
    candidates=(${=$(_archfleet_words "$cmdpath")})
    compadd -a candidates || _files
}
if (( $+functions[compdef] )); then
    compdef _archfleet archfleet
fi
"""


def bash_script(tree: list[Level]) -> str:
    return "# archfleet completion for bash: source <(archfleet completion bash)\n" + shared_functions(tree) + BASH_BODY


def zsh_script(tree: list[Level]) -> str:
    return ("#compdef archfleet\n# archfleet completion for zsh (after compinit): source <(archfleet completion zsh)\n"
            + shared_functions(tree) + ZSH_BODY)


def fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_script(tree: list[Level]) -> str:
    """One ``complete`` line per word: a level's words are offered once its path's words were seen."""
    lines = ["# archfleet completion for fish: archfleet completion fish | source", "complete -c archfleet -f"]
    for level in tree:
        if level.path:
            seen = " && ".join(f"__fish_seen_subcommand_from {shlex.quote(word)}" for word in level.path)
            below = [word for lv in tree if lv.path[:len(level.path)] == level.path and lv is not level
                     for word in lv.commands]
            condition = seen + (f" && not __fish_seen_subcommand_from {' '.join(below)}" if below else "")
        else:
            condition = "__fish_use_subcommand"
        for name, text in level.commands.items():
            lines.append(f"complete -c archfleet -n {fish_quote(condition)} -a {shlex.quote(name)} "
                         f"-d {fish_quote(text[:80])}")
        for value in level.values:
            lines.append(f"complete -c archfleet -n {fish_quote(condition)} -a {shlex.quote(value)}")
        for option, text in level.options.items():
            flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            files = " -F" if option in level.file_options else ""
            lines.append(f"complete -c archfleet -n {fish_quote(condition)} {flag}{files} -d {fish_quote(text[:80])}")
    return "\n".join(lines) + "\n"


SCRIPTS = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("completion", help="print a shell completion script (bash, zsh or fish)",
                                   description="install: bash: archfleet completion bash > "
                                   "~/.local/share/bash-completion/completions/archfleet; zsh: archfleet completion "
                                   "zsh > ~/.zfunc/_archfleet (with ~/.zfunc in fpath, before compinit); fish: "
                                   "archfleet completion fish > ~/.config/fish/completions/archfleet.fish")
    parser.add_argument("shell", choices=SHELLS, help="the shell")
    parser.set_defaults(handler=run_completion)


def run_completion(args: argparse.Namespace) -> int:
    from archfleet.cli import build_parser  # every command's parser, whichever one was asked for

    print(SCRIPTS[args.shell](levels(build_parser())), end="")
    return 0
