"""Regenerate ``eyepic/color_names.zlib`` after a palette change: ``python -m devtools.color_table``."""

from __future__ import annotations

import sys

from eyepic.color_table import TABLE_FILE, build_table, write_table
from eyepic.colors import name_pixels_exact


def main() -> int:
    path = write_table(build_table(name_pixels_exact), TABLE_FILE)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
