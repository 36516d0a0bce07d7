"""The web console: server-rendered pages at ``/`` on the API's listener.

See :mod:`soulwatch.api.console.app` for the pages and
:mod:`soulwatch.api.console.boards` for the YAML boards of the overview.
"""
