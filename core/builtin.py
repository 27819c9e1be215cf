"""Built-in default hook implementations, registered like any plugin (``trylast``)."""
