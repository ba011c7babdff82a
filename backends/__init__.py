"""Backend adapters: one module per framework, imported lazily."""
