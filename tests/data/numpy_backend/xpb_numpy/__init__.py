"""A third party's xpubench backend (test-only): numpy on the CPU, fp32."""
