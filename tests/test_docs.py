"""The docs set: MkDocs builds it in strict mode (a broken link or anchor fails), and every command
the docs show runs as written on a fresh clone: each executable exists after `make venv` (the
README says once, up front, to activate it), is a make target, or is an external tool the docs
name as a prerequisite."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MKDOCS = [sys.executable, "-m", "mkdocs"]
VENV_BIN = ROOT / ".venv" / "bin"
ACTIVATION = "source .venv/bin/activate"
# Installed by the user, each named where the docs list what to install: the page that says so.
EXTERNAL_TOOLS = {
    "make": "README.md",
    "gcloud": "docs/deploy.md",
    "pulumi": "docs/deploy.md",
    "kubectl": "docs/deploy.md",
    "docker": "docs/models.md",
    "curl": "README.md",
}
SHELL_BUILTINS = {"cd", "export", "source", ".", "echo", "printf", "test", "set"}
_FENCE = re.compile(r"^```(?:bash|sh|shell|console)\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)
_INLINE_MAKE = re.compile(r"`(?:[A-Z_]+=\S+ )*make (?P<target>[a-z][a-z-]*)")
_SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")", "$(", "`"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _commands(markdown: str) -> list[list[str]]:
    """Each simple command of the shell blocks, as words, leading assignments dropped."""
    commands = []
    for block in _FENCE.finditer(markdown):
        for line in block["body"].replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()`")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            lexer.wordchars += "$"
            current: list[str] = []
            for token in lexer:
                if token in _SEPARATORS or token.endswith("$"):  # `$(` splits as "...$", "("
                    commands.append(current)
                    current = []
                elif current or not _ASSIGNMENT.match(token):
                    current.append(token)
            commands.append(current)
    return [command for command in commands if command]


def _documented_commands() -> list[tuple[str, list[str]]]:
    return [
        (page.relative_to(ROOT).as_posix(), command)
        for page in PAGES
        for command in _commands(page.read_text())
    ]


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))


def test_the_extractor_reads_pipes_substitutions_and_assignments() -> None:
    markdown = (
        "```bash\n"
        'KEY=$(python -c "print(1)")   # a comment\n'
        'HASH=$(echo -n "$KEY" | .venv/bin/python -m service.auth) && \\\n'
        "  MODERATION_AUTH_DISABLED=1 bentoml serve x\n"
        "make plan\n"
        "```\n"
    )
    assert _commands(markdown) == [
        ["python", "-c", "print(1)"],
        ["echo", "-n", "$KEY"],
        [".venv/bin/python", "-m", "service.auth"],
        ["bentoml", "serve", "x"],
        ["make", "plan"],
    ]


def test_the_docs_show_commands() -> None:
    commands = _documented_commands()
    executables = {command[0] for _, command in commands}
    assert len(commands) > 40
    assert {"make", "curl", "pulumi", "gcloud", "kubectl", "bentoml", "hf"} <= executables


def test_the_readme_says_once_up_front_to_activate_the_venv() -> None:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert f"make venv && {ACTIVATION}" in quick_start


@pytest.mark.parametrize(
    ("page", "command"),
    _documented_commands(),
    ids=lambda value: value if isinstance(value, str) else shlex.join(value)[:60],
)
def test_every_documented_executable_exists_after_make_venv(page: str, command: list[str]) -> None:
    executable = command[0]
    if executable in SHELL_BUILTINS:
        return
    if executable in EXTERNAL_TOOLS:
        where = EXTERNAL_TOOLS[executable]
        named = re.search(rf"\b{executable}\b", (ROOT / where).read_text(), re.IGNORECASE)
        assert named, f"{where} must say to install {executable}"
    elif "/" in executable:
        assert (ROOT / executable).exists(), f"{page}: {executable} does not exist"
    else:
        assert (VENV_BIN / executable).exists(), (
            f"{page}: `{executable}` is neither in .venv/bin nor a documented external tool"
        )
    if executable == "make":
        targets = [word for word in command[1:] if not word.startswith("-") and "=" not in word]
        assert set(targets) <= _make_targets(), f"{page}: {shlex.join(command)}"


def test_every_make_target_the_prose_names_exists() -> None:
    named = {
        (page.relative_to(ROOT).as_posix(), match["target"])
        for page in PAGES
        for match in _INLINE_MAKE.finditer(page.read_text())
    }
    targets = _make_targets()
    assert {target for _, target in named} - targets == set(), sorted(named)


def test_hf_is_the_huggingface_hub_cli_in_the_venv() -> None:
    """`hf download`, which the docs and the import error suggest for offline machines."""
    result = subprocess.run(
        [str(VENV_BIN / "hf"), "download", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--local-dir" in result.stdout and "--revision" in result.stdout


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MKDOCS, "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_docs_set_builds_in_strict_mode_with_the_readme_as_front_page(
    tmp_path: Path,
) -> None:
    result = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    index = (tmp_path / "site" / "index.html").read_text()
    assert "Quick start" in index
    assert 'href="deploy.html"' in index  # README's docs/deploy.md, as a page of the site
    assert "docs/" not in re.findall(r'href="([^"]*)"', index)


@pytest.mark.parametrize(
    ("page", "broken"),
    [
        ("README.md", "[gone](docs/no-such-page.md)"),
        ("README.md", "[gone](docs/deploy.md#no-such-section)"),
        ("docs/deploy.md", "[gone](../service/no_such_module.py)"),
        ("docs/deploy.md", "[gone](../README.md#no-such-section)"),
    ],
)
def test_a_broken_link_fails_the_docs_build(tmp_path: Path, page: str, broken: str) -> None:
    copy = tmp_path / "repo"
    (copy / "docs").mkdir(parents=True)
    for name in ("mkdocs.yml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    for source in (ROOT / "docs").iterdir():
        shutil.copy(source, copy / "docs" / source.name)
    shutil.copytree(ROOT / "service", copy / "service")
    with (copy / page).open("a") as file:
        file.write(f"\n{broken}\n")
    result = _build(copy / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, result.stderr  # the broken link, and nothing else
    assert "no-such" in warnings[0] or "no_such" in warnings[0]


@pytest.mark.parametrize(
    ("message", "source"),
    [
        ("is not in the BentoML model store", "service/store.py"),
        ("no API keys configured: set MODERATION_API_KEY_HASHES", "service/auth.py"),
        ("is not 'sha256:<64 hex digits>'", "service/auth.py"),
        ("refusing to hash an empty key", "service/auth.py"),
        ("The models are still loading; retry shortly.", "service/app.py"),
        ("A model could not be loaded; the server log says which.", "service/app.py"),
        ("failed to load: ", "service/moderation.py"),
        ("make import-model: SOURCE is required", "Makefile"),
        ("cannot reach the Hugging Face Hub", "tools/model_import.py"),
        ("not found on the Hub", "tools/model_import.py"),
        ("placeholder value(s) in the stack config; replace each", "infra/config.py"),
        ("placeholder value(s) in", "tools/plan.py"),
        ("invalid stack configuration:", "infra/config.py"),
    ],
)
def test_troubleshooting_quotes_the_messages_the_code_prints(message: str, source: str) -> None:
    """A reworded error breaks this, not the newcomer searching the page for what they saw."""
    assert message in (ROOT / "docs" / "troubleshooting.md").read_text()
    assert message in (ROOT / source).read_text()


def test_the_development_layout_names_every_code_file() -> None:
    """docs/development.md opens with the layout, one line per folder and file: a new file without
    its line fails here."""
    page = (ROOT / "docs" / "development.md").read_text()
    layout = page[page.index("## Layout") : page.index("## The request path")]
    tracked = subprocess.run(
        ["git", "ls-files", "service", "tools", "infra", "policy", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    code = [Path(path) for path in tracked if path.endswith((".py", ".yaml"))]
    missing = [
        str(path)
        for path in code
        if path.name != "__init__.py" and f"`{path}`" not in layout and path.name not in layout
    ]
    assert not missing, f"docs/development.md's layout does not name: {missing}"
