"""xpubench inside pytest: the plugin, its session state, the built-in items, the fixture and the timer adapter."""
