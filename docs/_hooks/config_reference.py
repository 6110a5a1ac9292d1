"""MkDocs hook: adds reference/configuration.md, rendered from schemas/config.schema.yaml at build time.

Generated, never committed, so the reference cannot drift from the schema the workflow validates against.
"""

import sys
from pathlib import Path

from mkdocs.structure.files import File

PAGE = "reference/configuration.md"


def on_files(files, config):
    # this checkout's lpselect, not whichever one the environment has installed
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    from lpselect.schema_doc import render

    files.append(File.generated(config, PAGE, content=render()))
    return files
