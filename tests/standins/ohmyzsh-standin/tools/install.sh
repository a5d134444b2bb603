#!/bin/sh
# oh-my-zsh installer STAND-IN (archfleet tests). Same interface as ohmyzsh/tools/install.sh:
#   sh install.sh [--unattended] [--keep-zshrc] [--skip-chsh]
#   environment: ZSH (install dir, default ~/.oh-my-zsh), REMOTE (git URL), BRANCH, KEEP_ZSHRC, CHSH, RUNZSH
set -e
ZSH="${ZSH:-$HOME/.oh-my-zsh}"
REPO="${REPO:-ohmyzsh/ohmyzsh}"
REMOTE="${REMOTE:-https://github.com/${REPO}.git}"
BRANCH="${BRANCH:-master}"
KEEP_ZSHRC="${KEEP_ZSHRC:-no}"
CHSH="${CHSH:-yes}"
RUNZSH="${RUNZSH:-yes}"
while [ $# -gt 0 ]; do
  case $1 in
    --unattended) RUNZSH=no; CHSH=no ;;
    --skip-chsh) CHSH=no ;;
    --keep-zshrc) KEEP_ZSHRC=yes ;;
  esac
  shift
done
command -v git >/dev/null 2>&1 || { echo "Error: git is not installed" >&2; exit 1; }
if [ -d "$ZSH" ]; then
  echo "The \$ZSH folder already exists ($ZSH)." >&2
  exit 1
fi
git init --quiet "$ZSH"
cd "$ZSH"
git config core.eol lf
git remote add origin "$REMOTE"
# The real installer fetches with --depth=1; git's dumb HTTP (how the test serves this repo) cannot.
git fetch --quiet origin
git checkout --quiet -b "$BRANCH" "origin/$BRANCH"
cd - >/dev/null
zshrc="${ZDOTDIR:-$HOME}/.zshrc"
if [ "$KEEP_ZSHRC" != yes ]; then
  [ -f "$zshrc" ] && mv "$zshrc" "$zshrc.pre-oh-my-zsh"
  sed "s|^export ZSH=.*$|export ZSH=\"$ZSH\"|" "$ZSH/templates/zshrc.zsh-template" > "$zshrc"
fi
if [ "$CHSH" = yes ]; then chsh -s "$(command -v zsh)"; fi
echo "oh-my-zsh (stand-in) is now installed in $ZSH"
if [ "$RUNZSH" = yes ]; then exec zsh -l; fi
