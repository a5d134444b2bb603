#!/bin/bash
# Miniforge/Miniconda installer STAND-IN (archfleet tests). The batch interface of the real installers:
#   bash fake-miniforge-installer.sh -b [-u] [-p PREFIX]
# It writes PREFIX/bin/conda, a stand-in that knows: --version, env create|update -n NAME -f FILE [--prune],
# env list, shell.zsh hook, shell.bash hook, init zsh. An environment is PREFIX/envs/NAME with conda-meta/
# and a copy of its file (environment.yml).
set -eu
PREFIX="$HOME/miniforge3"
BATCH=0
UPDATE=0
while getopts "bfhp:su" opt; do
  case $opt in
    b) BATCH=1 ;;
    u) UPDATE=1 ;;
    p) PREFIX="$OPTARG" ;;
    f|s) ;;
    h) echo "usage: $0 [-b] [-u] [-p PREFIX]"; exit 0 ;;
    *) exit 2 ;;
  esac
done
if [ "$BATCH" != 1 ]; then echo "this stand-in only does batch mode (-b)" >&2; exit 2; fi
if [ -e "$PREFIX" ] && [ "$UPDATE" != 1 ]; then
  echo "ERROR: File or directory already exists: '$PREFIX'" >&2
  echo "If you want to update an existing installation, use the -u option." >&2
  exit 1
fi
echo "PREFIX=$PREFIX"
mkdir -p "$PREFIX/bin" "$PREFIX/envs" "$PREFIX/conda-meta" "$PREFIX/etc/profile.d"
cat > "$PREFIX/bin/conda" <<'CONDA'
#!/bin/sh
# conda STAND-IN (archfleet tests), written by fake-miniforge-installer.sh
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-}" in
  --version) echo "conda 24.11.3 (archfleet stand-in)" ;;
  shell.zsh|shell.bash)
    [ "${2:-}" = hook ] || { echo "usage: conda $1 hook" >&2; exit 2; }
    cat <<HOOK
export CONDA_EXE='$ROOT/bin/conda'
export CONDA_PREFIX='$ROOT'
export PATH='$ROOT/bin':"\$PATH"
conda() { "\$CONDA_EXE" "\$@"; }
HOOK
    ;;
  init)
    rc="$HOME/.${2:-bash}rc"
    grep -q '>>> conda initialize >>>' "$rc" 2>/dev/null || printf '%s\n' '# >>> conda initialize >>>' \
      "eval \"\$('$ROOT/bin/conda' shell.${2:-bash} hook)\"" '# <<< conda initialize <<<' >> "$rc"
    ;;
  env)
    action="${2:-}"; shift 2 || true
    name=""; file=""
    while [ $# -gt 0 ]; do
      case $1 in -n|--name) name="$2"; shift ;; -f|--file) file="$2"; shift ;; --prune|-q|--quiet) ;; esac
      shift
    done
    case "$action" in
      list) echo "base  $ROOT"; for e in "$ROOT"/envs/*/; do [ -d "$e" ] && echo "$(basename "$e")  ${e%/}"; done; exit 0 ;;
      create|update) ;;
      *) echo "conda stand-in: env $action is not supported" >&2; exit 2 ;;
    esac
    [ -f "$file" ] || { echo "EnvironmentFileNotFound: '$file' file not found" >&2; exit 1; }
    [ -n "$name" ] || name="$(sed -n 's/^name: *//p' "$file" | head -n 1)"
    [ -n "$name" ] || { echo "CondaValueError: no environment name" >&2; exit 1; }
    target="$ROOT/envs/$name"
    if [ "$action" = create ] && [ -d "$target" ]; then
      echo "CondaValueError: prefix already exists: $target" >&2; exit 1
    fi
    if [ "$action" = update ] && [ ! -d "$target" ]; then
      echo "EnvironmentLocationNotFound: Not a conda environment: $target" >&2; exit 1
    fi
    mkdir -p "$target/conda-meta" "$target/bin"
    cp "$file" "$target/environment.yml"
    echo "$action $(date -u +%FT%TZ)" >> "$target/conda-meta/history"
    echo "done: $action $name"
    ;;
  *) echo "conda stand-in: $* is not supported" >&2; exit 2 ;;
esac
CONDA
chmod +x "$PREFIX/bin/conda"
echo "installation finished (archfleet stand-in)."
