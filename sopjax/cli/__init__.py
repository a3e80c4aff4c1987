"""The ``sopjax`` command line: one module per subcommand, registered in :mod:`sopjax.cli.main`."""
