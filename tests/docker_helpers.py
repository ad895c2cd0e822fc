"""Helpers for the Docker tests: what the app image should hold."""

import fnmatch
import modulefinder
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_POINTS = ("paypoc.py", "paypoc_worker.py")


def runtime_python_files(root=ROOT):
    """The project's .py files that `python paypoc.py` and `python paypoc_worker.py` import, and those two."""
    # Searching the project alone: imports of the standard library and of packages are not followed.
    finder = modulefinder.ModuleFinder(path=[root])
    for script in ENTRY_POINTS:
        finder.run_script(os.path.join(root, script))
    imported = {os.path.relpath(module.__file__, root) for name, module in finder.modules.items()
                if module.__file__ and name != "__main__"}
    return imported | set(ENTRY_POINTS)


def ignored(path, patterns):
    """Whether a .dockerignore pattern leaves path (relative, `/`-separated) out of the build context.

    As Docker does, a pattern may match the path or any directory above it, and a leading `**/`
    also matches at the top. The patterns in this project's .dockerignore need no more than that.
    """
    parts = path.split("/")
    candidates = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(candidate, pattern) or
               (pattern.startswith("**/") and fnmatch.fnmatchcase(candidate, pattern[3:]))
               for pattern in patterns for candidate in candidates)


def copied_python_files(root=ROOT):
    """The .py files the Dockerfile's app stage copies from the build context that .dockerignore leaves."""
    with open(os.path.join(root, ".dockerignore")) as file:
        patterns = [line.strip() for line in file if line.strip() and not line.startswith("#")]
    with open(os.path.join(root, "Dockerfile")) as file:
        dockerfile = file.read()
    app_stage = dockerfile[dockerfile.index(" AS app"):]
    copied = set()
    for line in re.findall(r"^COPY (.+)$", app_stage, re.MULTILINE):
        for source in line.split()[:-1]:  # the last word is the destination
            if os.path.isfile(os.path.join(root, source)):
                copied.add(source)
            for folder, _, names in os.walk(os.path.join(root, source)):
                copied.update(os.path.relpath(os.path.join(folder, name), root) for name in names)
    return {path for path in copied if path.endswith(".py") and not ignored(path, patterns)}
