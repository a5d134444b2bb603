"""One module per `archfleet` subcommand; see archfleet.cli."""
