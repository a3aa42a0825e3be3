"""Adapters that run on one machine: SQLite tables, a folder of files, subprocess jobs,
in-process queues.

Each implements a port of `shared.ports` with the same contract as its AWS twin in
`shared.aws` (one contract test suite runs against both); only the composition roots
(`shared.backends`, `local/`) import them.
"""
