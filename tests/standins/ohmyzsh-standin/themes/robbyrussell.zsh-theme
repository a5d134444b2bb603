PROMPT="%~ %# "  # robbyrussell STAND-IN
