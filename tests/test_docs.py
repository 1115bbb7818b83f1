"""docs/cli.md and the click commands stay in step: every command and option is documented,
everything documented exists, and every ``--help`` works."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from jobstore.cli import cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
GLOBAL = "Global options"


def sections() -> dict[str, str]:
    """The doc's ``## `` sections by title: ``jobstore NAME`` for a command."""
    found: dict[str, str] = {}
    title = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
            found[title] = ""
        elif title is not None:
            found[title] += line + "\n"
    return found


def commands() -> dict[str, click.Command]:
    return dict(sorted(cli.commands.items()))


def option_names(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(n for n in param.opts + param.secondary_opts if n != "--help")
    return names


def documented_options(text: str) -> set[str]:
    """The options named in the first column of a section's option table."""
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `-"):
            found.update(re.findall(r"`(--?[a-z][a-z-]*)", line.split("|")[1]))
    return found


@pytest.mark.parametrize("name", list(commands()))
def test_every_command_has_a_section_naming_each_of_its_options(name: str) -> None:
    text = sections().get(f"jobstore {name}")
    assert text is not None, f"docs/cli.md has no '## jobstore {name}' section"
    command = commands()[name]
    for option in option_names(command):
        assert f"`{option}" in text, f"jobstore {name} {option} is not in docs/cli.md"
    assert "Exit codes:" in text, f"jobstore {name} documents no exit codes"
    assert "```console" in text, f"jobstore {name} has no example"


@pytest.mark.parametrize("name", list(commands()))
def test_every_documented_option_exists_on_its_command(name: str) -> None:
    documented = documented_options(sections()[f"jobstore {name}"])
    assert documented <= option_names(commands()[name]) | {"-h", "--help"}


@pytest.mark.parametrize("name", list(commands()))
def test_the_synopsis_names_every_argument(name: str) -> None:
    text = sections()[f"jobstore {name}"]
    synopsis = text.split("```\n", 2)[1].splitlines()[0]
    assert synopsis.startswith(f"jobstore {name}")
    for param in commands()[name].params:
        if isinstance(param, click.Argument):
            assert (param.metavar or param.name.upper()) in synopsis


def test_every_documented_command_exists() -> None:
    titles = [t for t in sections() if t.startswith("jobstore ")]
    assert sorted(t.split(" ", 1)[1] for t in titles) == sorted(commands())


def test_the_global_options_are_documented() -> None:
    documented = documented_options(sections()[GLOBAL])
    assert documented == option_names(cli) | {"-h", "--help"}


@pytest.mark.parametrize("name", [None, *commands()])
def test_help_works(name: str) -> None:
    args = ["--help"] if name is None else [name, "--help"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: jobstore{'' if name is None else ' ' + name}")
