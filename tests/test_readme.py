"""The README stays true: its two commands, and the example it shows is the one CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_two_commands_and_ci_runs_the_test_one():
    section = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    assert commands == ["bash scripts/setup.sh && .venv/bin/xpubench probe && .venv/bin/xpubench run --report",
                        "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for script in ("scripts/setup.sh", "scripts/test.sh"):
        assert (ROOT / script).exists()


def test_the_readme_example_is_the_file_ci_runs():
    block = re.search(r"```python\n(BATCH, WIDTH.*?)```", README, re.S).group(1)
    example = (ROOT / "examples" / "test_my_layer.py").read_text()
    assert block.strip() in example
