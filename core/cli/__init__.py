"""The `mmvae` command line. Sub-commands are plugins found through the `mmvae.commands` entry
point group: each names a `register(subparsers)` function that adds its parser and sets
`func` (a callable taking the parsed args and returning an exit code)."""
