# oh-my-zsh STAND-IN (archfleet tests): loads the theme and plugins the way oh-my-zsh does, nothing more.
ZSH_CUSTOM="${ZSH_CUSTOM:-$ZSH/custom}"
for plugin in $plugins; do
  [ -f "$ZSH/plugins/$plugin/$plugin.plugin.zsh" ] && source "$ZSH/plugins/$plugin/$plugin.plugin.zsh"
done
[ -n "$ZSH_THEME" ] && [ -f "$ZSH/themes/$ZSH_THEME.zsh-theme" ] && source "$ZSH/themes/$ZSH_THEME.zsh-theme"
export OH_MY_ZSH_STANDIN_LOADED=1
