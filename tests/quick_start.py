"""The README's Quick start as data: each command it shows and the output it promises, run as a
reader pasting them into a shell would."""

import os
import re
import signal
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_API, README_FILE = "http://localhost:8000", "/tmp/payment.json"


def quick_start_steps():
    """(command, expected output) for each shell block of the Quick start followed by the output it promises."""
    with open(os.path.join(ROOT, "README.md")) as readme:
        section = readme.read().split("## Quick start\n")[1].split("\n## ")[0]
    # A block's lines hold no fence, so a match never reaches into the next block.
    steps = re.findall(r"^```bash\n((?:(?!```).*\n)+)```\n`([^`\n]+)`", section, re.MULTILINE)
    assert [command.split()[0] for command, _ in steps] == ["curl", "curl", "for"], steps  # the POST, GET, loop
    return steps


def promised(output, expected):
    """True when output is what the README shows, "…" standing for whatever it left out."""
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(pattern, output.strip()) is not None


def run(command, api=README_API, payment_file=README_FILE):
    """Run a Quick start command with bash, against api, keeping the POST's answer in payment_file."""
    command = command.replace(README_API, api).replace(README_FILE, str(payment_file))
    # A session of its own, so that a command that hangs is stopped with everything it started.
    shell = subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        out, err = shell.communicate(timeout=60)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
    assert shell.returncode == 0, err
    return out
