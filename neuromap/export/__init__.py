"""Writers of a compiled Mapping in other tools' formats (one module per tool)."""
