"""The test command's servers belong to one checkout: a second checkout on the same machine gets
its own state directory and RabbitMQ node name, so it never reuses (or stops) the first one's."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def checkout(tmp_path: Path, name: str) -> Path:
    """A copy of the scripts, as another clone of the repository would have them."""
    root = tmp_path / name
    (root / "scripts").mkdir(parents=True)
    for script in ("services.sh", "test.sh"):
        shutil.copy2(ROOT / "scripts" / script, root / "scripts" / script)
    return root


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_TEST_")}


def services_dir_of_test_sh(root: Path) -> str:
    """The state directory `scripts/test.sh` exports, by running its own lines that set it."""
    lines = [
        line
        for line in (root / "scripts" / "test.sh").read_text().splitlines()
        if "HOTLINE_TEST_SERVICES_DIR" in line and not line.lstrip().startswith("#")
    ]
    assert lines, "scripts/test.sh must export HOTLINE_TEST_SERVICES_DIR"
    script = "set -euo pipefail\n" + "\n".join(lines) + '\nprintf %s "$HOTLINE_TEST_SERVICES_DIR"'
    result = subprocess.run(
        ["bash", "-c", script], cwd=root, env=environment(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def config(root: Path) -> dict[str, str]:
    result = subprocess.run(
        [str(root / "scripts" / "services.sh"), "config"],
        env=environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def test_two_checkouts_never_share_their_test_servers(tmp_path: Path) -> None:
    first, second = checkout(tmp_path, "first"), checkout(tmp_path, "second")
    first_dir, second_dir = services_dir_of_test_sh(first), services_dir_of_test_sh(second)
    assert first_dir != second_dir
    assert first_dir == services_dir_of_test_sh(first), "stable for one checkout"
    # PostgreSQL runs as `postgres`, which may not enter a checkout's parents: /tmp it is
    assert first_dir.startswith("/tmp/") and second_dir.startswith("/tmp/")
    assert config(first)["HOTLINE_TEST_SERVICES_DIR"] == first_dir
    nodes = {config(root)["HOTLINE_TEST_AMQP_NODENAME"] for root in (first, second)}
    assert len(nodes) == 2


def test_another_checkout_does_not_see_this_ones_servers_as_its_own(tmp_path: Path) -> None:
    other = checkout(tmp_path, "other")
    status = subprocess.run(
        [str(other / "scripts" / "services.sh"), "status"],
        env=environment(),
        capture_output=True,
        text=True,
    )
    assert status.returncode == 3, status.stdout
    assert status.stdout.splitlines() == ["postgres: stopped", "rabbitmq: stopped"]
