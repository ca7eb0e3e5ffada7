"""The ``runstack`` command line."""
