"""Tests of crlkit.identify (a package, so test module names do not clash with tests/robust)."""
