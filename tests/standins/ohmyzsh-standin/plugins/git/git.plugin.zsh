alias gst='git status'  # git plugin STAND-IN
