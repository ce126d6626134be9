"""The radplan command line (click): one group, one module per command group."""
