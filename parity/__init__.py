"""Cross-backend machinery (weight conversion, reports) and the tests proving the backends agree."""
