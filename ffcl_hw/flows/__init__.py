"""The flows behind the ``ffcl-hw`` subcommands; each is a plain function the CLI calls."""
