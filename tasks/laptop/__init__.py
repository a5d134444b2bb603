"""The laptop profile: operations (they decide), command builders (they build text), per-OS vars, the plan."""
