"""checkov's own checks for the in-cluster rules of the policy pack (policies/rules/cluster_access.py),
so the independent scanner refuses the same regressions. Loaded by
`checkov --external-checks-dir policies/checkov_checks` (tests/test_checkov.py); checkov imports
every module here, each registering its check. Not imported by the program or the pack."""
